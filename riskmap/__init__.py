"""riskmap: per-village flood and geohazard risk warnings from forecast rainfall.

The public API is imported lazily so that ``import riskmap`` and the CLI start fast.

Examples
--------
>>> import riskmap
>>> riskmap.Level.RED.grade
'Ⅰ'
"""

from __future__ import annotations

import importlib
from typing import Any

import pyproj  # noqa: F401  - must load before eccodes: the eccodes wheels crash at exit otherwise

__version__ = "0.1.0"

_EXPORTS = {
    "Level": "riskmap.levels",
    "Settings": "riskmap.config",
    "load_settings": "riskmap.config",
    "Region": "riskmap.region",
    "load_region": "riskmap.region",
    "check_region": "riskmap.check",
    "open_forecast": "riskmap.forecast",
    "open_observed": "riskmap.forecast",
    "village_rainfall": "riskmap.rainfall",
    "coverage_weights": "riskmap.weights",
    "CoverageWeights": "riskmap.weights",
    "window_maxima": "riskmap.windows",
    "effective_rainfall": "riskmap.windows",
    "load_rules": "riskmap.rules",
    "evaluate": "riskmap.rules",
    "RiskmapError": "riskmap.errors",
    "CycleRequest": "riskmap.cycle",
    "run_cycle": "riskmap.cycle",
    "evaluate_cycle": "riskmap.cycle",
    "explain_village": "riskmap.rules",
    "warning_map": "riskmap.maps",
    "write_map": "riskmap.maps",
    "build_demo": "riskmap.demo",
    "write_demo": "riskmap.demo",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'riskmap' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
