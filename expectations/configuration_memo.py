"""Each expectation's configuration built once per validation run, not once per keyword read.

GX 1.x builds `Expectation.configuration` anew on every read (a pydantic `.dict()` of the
expectation and a new ExpectationConfiguration), and a validation reads it once per keyword
argument it looks up (`_get_success_kwargs`, `_get_runtime_kwargs`, `get_metric_kwargs` …): some
70 builds per expectation per run, a fifth of the validation stage (docs/performance.md).

`install()` wraps GX's property: inside `one_run()` (validate.py's `_run`, one GX validation on
this thread) each expectation object's configuration is built on its first read and the same
object returned after; outside a run, and on any other thread, GX's own property answers. The
expectation objects a run reads are the ones GX makes for that run from its configurations (the
suite's own ones are read once each), and GX copies a configuration before it changes one
(`deepcopy` before `process_suite_parameters`, before adding the batch id), so within a run an
expectation's configuration does not change. The memo is dropped when the run ends: nothing is
remembered from one run (or one set of parameters) to the next.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_LOCAL = threading.local()  # .built: {id(expectation): (expectation, configuration)} during a run


def install() -> None:
    """Wrap GX's `Expectation.configuration` (a second call changes nothing). A GX without such
    a property is left as it is: it builds every configuration as before."""
    from great_expectations.expectations.expectation import Expectation

    current = Expectation.__dict__.get("configuration")
    if not isinstance(current, property) or current.fget is None or getattr(current.fget, "_fazhi_memo", False):
        return
    build = current.fget

    def configuration(self):
        built = getattr(_LOCAL, "built", None)
        if built is None:
            return build(self)
        hit = built.get(id(self))
        if hit is None or hit[0] is not self:  # the object is held, so its id is not reused in the run
            hit = built[id(self)] = (self, build(self))
        return hit[1]

    configuration._fazhi_memo = True
    configuration.__doc__ = current.__doc__
    Expectation.configuration = property(configuration)


@contextmanager
def one_run() -> Iterator[None]:
    """One GX validation on this thread: configurations are built once each until it ends."""
    outer = getattr(_LOCAL, "built", None)
    _LOCAL.built = {}
    try:
        yield
    finally:
        _LOCAL.built = outer
