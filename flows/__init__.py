"""Orchestration: Prefect flows and tasks over the library (warehouse/), deployment helpers and
the `fazhi` command line. The only package that imports Prefect."""

from warehouse.secrets import register_secret_reader


def _prefect_secret(name: str) -> str:
    from prefect.blocks.system import Secret  # only when a configuration names a block

    return str(Secret.load(name).get())


register_secret_reader(_prefect_secret)
