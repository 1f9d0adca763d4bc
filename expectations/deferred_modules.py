"""Modules GX imports but no validation here uses, imported on their first use instead.

GX 1.x imports `altair` (charts) and `scipy.stats` (statistics) at module level for one of its
core expectations, expect_column_kl_divergence_to_be_less_than, which no suite of this project
uses: ~0.65 s of GX's ~2 s import, paid by every process that validates (`fazhi run`, a flow
run, a validation worker; docs/performance.md).

`defer()` puts a stand-in for each in `sys.modules` before GX is imported. GX's
`import altair as alt` and `from scipy import stats` then bind the stand-in; the first read of
any attribute of it (`stats.entropy`, `alt.Chart`) imports the real module, which takes the
stand-in's place in `sys.modules`, and answers. Nothing is lost: a process that does use them
pays the import then. importlib's LazyLoader cannot do this on Python 3.11: the import system
reads the module's `__spec__` when GX imports it, and that read already loads it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types

DEFERRED = ("altair", "scipy.stats")
_LOAD = threading.Lock()


class DeferredModule(types.ModuleType):
    """Stands in `sys.modules` for a module until one of its attributes is read."""

    def __getattr__(self, attr: str):
        # called only for what the stand-in lacks (not its __name__ or __spec__): anything else,
        # __path__ when a submodule is imported included, is the real module's
        return getattr(self.load(), attr)

    def load(self) -> types.ModuleType:
        """The real module, imported now if no one has imported it yet. The lock covers taking
        the stand-in out, not the import: Python's own import lock makes a second thread wait
        for the first one's import (holding ours through it could deadlock with a module whose
        import reads a stand-in on another thread)."""
        name = self.__name__
        with _LOAD:
            if sys.modules.get(name) is self:
                del sys.modules[name]
                parent, _, child = name.rpartition(".")
                if parent and vars(sys.modules[parent]).get(child) is self:
                    delattr(sys.modules[parent], child)
        return importlib.import_module(name)


def defer(names: tuple[str, ...] = DEFERRED) -> None:
    """A stand-in for each module not imported yet (one already imported is left as it is)."""
    with _LOAD:
        for name in names:
            if name in sys.modules:
                continue
            spec = importlib.util.find_spec(name)  # imports the parent package (scipy: a few ms)
            if spec is None:  # not installed: GX's own import says so
                continue
            module = DeferredModule(name)
            module.__spec__ = spec
            sys.modules[name] = module


def loaded(name: str) -> bool:
    """The real module is imported (not a stand-in, nor absent)."""
    return name in sys.modules and not isinstance(sys.modules[name], DeferredModule)
