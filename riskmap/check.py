"""Check a region against its data contract and report every problem at once.

:func:`check_region` reads the region once (:func:`riskmap.region_io.read_region_raw`)
and :func:`check_raw` runs every rule over the raw frames, vectorised; nothing is
repaired.  Each :class:`~riskmap.region_io.Problem` names the layer, the row
(village code, feature id, or ``#N`` for the N-th record) and the column.

Rules (errors unless marked *warning*): mandatory layer present and not empty; required columns
present; vector layers have a CRS, geometries present, non-empty, of an allowed
type and valid (with :func:`shapely.validation.explain_validity` and the fix to
apply); village codes present, 12 digits, unique; township/county names agree with
the code prefixes (*warning*); ids present and unique; counts (population,
households, threatened_*, workers, capacity) whole and non-negative; reservoir
scale and status known, scale agreeing with storage_m3 (*warning*); hazard-site and
mine kinds known (*warning*); links resolve (reservoir_zones.reservoir_id,
contacts.admin_code, contacts.feature_layer + feature_id,
critical_rainfall.village_code); roles known; households belong to a village;
phone numbers well formed (masked in messages); household locations in degrees;
soil states known; durations > 0; prepare_mm ≤ immediate_mm; one threshold per
village, duration and soil.  Codes a spreadsheet turned into numbers get advice.

To check and load from one reading, use :func:`riskmap.region_io.read_region_raw`,
:func:`check_raw` and :func:`riskmap.region.region_from_raw` (as
:func:`riskmap.region.load_region` does).

Examples
--------
>>> report = CheckReport(problems=(Problem("villages", "510100001001", "population", "negative count: -5"),),
...                      summary={"villages": 3})
>>> report.ok
False
>>> print("\\n".join(report.format()))
ERROR villages [510100001001] population: negative count: -5
layers: villages 3 (1 error)
1 error, 0 warnings: the region is NOT usable
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from riskmap import check_rules as rules
from riskmap.check_links import check_links
from riskmap.region_io import Problem, RawRegion, read_region_raw
from riskmap.schema import LAYERS

__all__ = ["Problem", "CheckReport", "check_region", "check_raw"]


@dataclass(frozen=True)
class CheckReport:
    """Every problem found in a region, and how many records each layer has."""

    problems: tuple[Problem, ...]
    summary: Mapping[str, int] = field(default_factory=dict)
    """Records per layer present (layers absent from the region are not listed)."""
    source: str = ""

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not any(p.severity == "error" for p in self.problems)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity != "error")

    def _tally(self, layer: str) -> str:
        """`` (2 errors, 1 warning)`` for a layer with problems, else ``''``."""
        e = sum(p.layer == layer and p.severity == "error" for p in self.problems)
        w = sum(p.layer == layer and p.severity != "error" for p in self.problems)
        parts = [f"{e} error{'s' * (e != 1)}"] * bool(e) + [f"{w} warning{'s' * (w != 1)}"] * bool(w)
        return f" ({', '.join(parts)})" if parts else ""

    def format(self, limit: int | None = None) -> list[str]:
        """Lines to print: one per problem (errors first), the layer counts, a verdict.

        Parameters
        ----------
        limit
            Show at most this many problem lines, then ``… and N more``.
        """
        ordered = [*self.errors, *self.warnings]
        shown = ordered if limit is None else ordered[:limit]
        lines = [p.format() for p in shown]
        if len(shown) < len(ordered):
            lines.append(f"… and {len(ordered) - len(shown)} more")
        lines.append("layers: " + (", ".join(f"{k} {v}{self._tally(k)}" for k, v in self.summary.items())
                                   or "none"))
        n_err, n_warn = len(self.errors), len(self.warnings)
        verdict = "the region is usable" if self.ok else "the region is NOT usable"
        lines.append(f"{n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}: {verdict}")
        return lines


def check_raw(raw: RawRegion) -> CheckReport:
    """Run every rule over a region as read; see the module docstring for the rules."""
    out: list[Problem] = list(raw.problems)
    frames = {name: layer.frame for name, layer in raw.layers.items()}
    usable: dict[str, pd.DataFrame] = {}
    for name, frame in frames.items():
        spec = LAYERS[name]
        missing = [c for c in spec.required if c not in frame.columns]
        out += [Problem(name, "", c, f"missing required column (have: {', '.join(map(str, frame.columns))})")
                for c in missing]
        if spec.mandatory and frame.empty:
            out.append(Problem(name, "", "", f"the {name} layer has no features"))
        labels = rules.Labels(name, frame)
        if spec.kind == "vector":
            out += rules.check_geometry(name, frame, labels)
        out += rules.check_values(name, frame, labels)
        usable[name] = frame
    out += check_links(usable)
    summary = {name: len(frames[name]) for name in LAYERS if name in frames}
    return CheckReport(tuple(out), summary, raw.source)


def check_region(path: str | Path) -> CheckReport:
    """Check the region at *path* (GeoPackage or directory) and report every problem.

    Examples
    --------
    >>> check_region("/nonexistent/region.gpkg")
    Traceback (most recent call last):
    ...
    riskmap.errors.RegionError: /nonexistent/region.gpkg: no such region (GeoPackage or directory)
    """
    return check_raw(read_region_raw(path))
