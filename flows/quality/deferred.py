"""Modules Great Expectations imports and tomeflow's gate never uses, imported on first use.

`import great_expectations` imports scipy.stats (for the KL-divergence and Kolmogorov-Smirnov
expectations) and altair (for those expectations' charts) at module level, and uses them only
inside the functions of those expectations. tomeflow's suites use neither. Measured on the
two-core machine: 1.1 of the import's 2.7 CPU-s and 640 of its 2,289 modules.

`defer` puts a stand-in for each in sys.modules before Great Expectations is imported. The
first attribute read from a stand-in imports the real module (and the stand-in takes on its
attributes), so an expectation or a renderer that needs one still gets it, just later.
Python's importlib.util.LazyLoader does not help here: the import statement itself reads the
module's `__spec__`, which makes a lazy module load at once.
"""

from __future__ import annotations

import importlib
import sys
import threading
import types
from typing import Any

UNUSED_BY_THE_GATE = ("scipy.stats", "altair")

_lock = threading.RLock()


class _StandIn(types.ModuleType):
    """In sys.modules in place of a module not imported yet; imports it when first read."""

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._real(), attr)

    def _real(self) -> types.ModuleType:
        name = self.__name__
        with _lock:
            if sys.modules.get(name) is self:
                del sys.modules[name]
            real = importlib.import_module(name)
            if real is not self:
                self.__dict__.update(real.__dict__)
            return real


def defer(names: tuple[str, ...] = UNUSED_BY_THE_GATE) -> list[str]:
    """Stand-ins for the named modules not yet imported; returns the names deferred."""
    deferred = []
    with _lock:
        for name in names:
            if name in sys.modules:
                continue  # imported already: nothing to save
            parent, _, child = name.rpartition(".")
            stand_in = _StandIn(name)
            sys.modules[name] = stand_in
            if parent:
                setattr(importlib.import_module(parent), child, stand_in)
            deferred.append(name)
    return deferred


def is_deferred(name: str) -> bool:
    """Whether name is still a stand-in (its real module not imported)."""
    return isinstance(sys.modules.get(name), _StandIn)
