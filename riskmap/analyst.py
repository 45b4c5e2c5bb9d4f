"""Small conveniences for the GIS analyst in a notebook: the demo in a folder, tables, tuning rules.

Everything here wraps the public pipeline (:func:`riskmap.cycle.evaluate_cycle`,
:func:`riskmap.assess.assess`, :func:`riskmap.rules.load_rules`) without a store, a gateway or
the clock; the notebooks in ``notebooks/`` use them.

* :func:`demo_request` writes (or reuses) the demo county in a folder and returns the
  :class:`~riskmap.cycle.CycleRequest` for it, with the coverage-weight cache in that folder
  (not ``~/.cache``).
* :func:`levels_frame`, :func:`hazard_table`, :func:`level_counts`, :func:`compare_levels`:
  the assessment as pandas tables indexed by village code, counts per level with every level
  present, and before/after crosstabs.
* :func:`copy_rules` and :func:`reassess`: the rule-tuning loop (copy the packaged rules, edit a
  YAML file, re-run only the rule stage on the same rainfall).

Examples
--------
The demo county, assessed with the packaged rules, then with the red 3 h threshold lowered:

>>> import tempfile
>>> from pathlib import Path
>>> from riskmap.cycle import evaluate_cycle
>>> folder = tempfile.TemporaryDirectory()
>>> tmp = Path(folder.name)
>>> ev = evaluate_cycle(demo_request(tmp))
>>> before = levels_frame(ev.result, ev.rainfall.region)
>>> counts = level_counts(before)
>>> counts.loc[4, "color"], int(counts["villages"].sum()) == len(before)
('red', True)
>>> rules = copy_rules(tmp / "warning_rules")
>>> f = rules / "rainstorm.yaml"
>>> f.write_text(f.read_text(encoding="utf-8").replace("threshold_mm: 100", "threshold_mm: 80"),
...              encoding="utf-8") > 0
True
>>> after = levels_frame(reassess(ev, rules), ev.rainfall.region)
>>> table = compare_levels(before["level"], after["level"])
>>> int(table.to_numpy().sum()) == len(before), bool((after["level"] >= before["level"]).all())
(True, True)
>>> folder.cleanup()
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from riskmap.config import Settings
from riskmap.errors import InputError, RiskmapIOError
from riskmap.levels import Level

if TYPE_CHECKING:
    from riskmap.assess import AssessResult
    from riskmap.cycle import CycleRequest, Evaluation
    from riskmap.region import Region
    from riskmap.rules import Assessment, RuleSet

__all__ = [
    "compare_levels",
    "copy_rules",
    "demo_request",
    "hazard_table",
    "level_counts",
    "levels_frame",
    "reassess",
    "with_cache_dir",
]

LEVEL_LABELS = tuple(lv.color for lv in Level)
"""Row/column labels of :func:`compare_levels`: none, blue, yellow, orange, red."""
_VILLAGE_EXTRA = ("township", "population", "households")
_RULE_SUFFIXES = (".yaml", ".yml", ".md")


def with_cache_dir(settings: Settings, cache_dir: str | os.PathLike[str]) -> Settings:
    """``settings`` with the coverage-weight cache in ``cache_dir`` (everything else unchanged).

    Examples
    --------
    >>> with_cache_dir(Settings(), "/tmp/w").paths.cache_dir
    '/tmp/w'
    """
    return dataclasses.replace(settings, paths=dataclasses.replace(settings.paths, cache_dir=str(cache_dir)))


def demo_request(directory: str | os.PathLike[str], *, seed: int | None = None,
                 settings: Settings | None = None, rules_dir: Any = None) -> CycleRequest:
    """Write (or reuse) the demo county in ``directory`` and the request that assesses it.

    Parameters
    ----------
    directory
        Folder for ``region.gpkg``, ``forecast.nc`` and ``demo.json`` (:func:`riskmap.demo.write_demo`;
        reused when already there), the weight cache ``cache/`` and the output folder ``out/``.
    seed
        Demo seed; the default seed when None.
    settings
        Settings to run with (defaults when None); their ``paths.cache_dir`` is replaced by
        ``directory/cache``.
    rules_dir
        A folder of rule files; the packaged defaults when None.

    Returns
    -------
    riskmap.cycle.CycleRequest
        For :func:`riskmap.cycle.evaluate_cycle` (no store) or :func:`riskmap.cycle.run_cycle`.
        ``now`` is left None: the forecast's reference time.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> req = demo_request(folder.name)
    >>> req.region.name, [p.name for p in req.forecast], req.out_dir.name
    ('region.gpkg', ['forecast.nc'], 'out')
    >>> Path(req.settings.paths.cache_dir).name
    'cache'
    >>> folder.cleanup()
    """
    from riskmap.cycle import CycleRequest
    from riskmap.demo import DEFAULT_SEED, write_demo

    folder = Path(directory)
    paths = write_demo(folder, seed=DEFAULT_SEED if seed is None else seed)
    return CycleRequest(region=paths.region, forecast=(paths.forecast,), observed=paths.observed,
                        out_dir=folder / "out",
                        settings=with_cache_dir(settings or Settings(), folder / "cache"),
                        rules_dir=rules_dir)


def _assessment(result: AssessResult | Assessment) -> Assessment:
    if hasattr(result, "assessment"):
        inner: Assessment = result.assessment
        return inner
    return result


def levels_frame(result: AssessResult | Assessment, region: Region | None = None) -> pd.DataFrame:
    """One row per village, indexed by ``village_code``: the ``levels.csv`` columns and more.

    Parameters
    ----------
    result
        An :class:`~riskmap.assess.AssessResult` (``ev.result``) or its ``assessment``.
    region
        When given, its villages' ``township``, ``population`` and ``households`` are joined in.

    Returns
    -------
    pandas.DataFrame
        Columns ``village_name``, [``township``, ``population``, ``households``,] ``level`` (int 0-4),
        ``color``, ``color_zh`` (红色 …), ``grade``, ``hazards``, ``score``, ``reasons``; villages in region
        order.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> villages = pd.DataFrame({"village_code": ["469900001001", "469900001002"],
    ...                          "village_name": ["甲村", "乙村"], "level": [4, 0], "color": ["red", "none"],
    ...                          "grade": ["Ⅰ", ""], "hazards": ["rainstorm:4", ""], "score": [80, 0],
    ...                          "reasons": ["…", ""]})
    >>> table = levels_frame(SimpleNamespace(villages=villages))
    >>> table[["village_name", "level", "color_zh"]]  # doctest: +NORMALIZE_WHITESPACE
                 village_name  level color_zh
    village_code
    469900001001           甲村      4       红色
    469900001002           乙村      0        无
    """
    villages = _assessment(result).villages
    out = villages.set_index(villages["village_code"].astype(str)).drop(columns="village_code")
    out.index.name = "village_code"
    out["level"] = out["level"].astype(int)
    out.insert(out.columns.get_loc("color") + 1, "color_zh", [Level(v).color_zh for v in out["level"]])
    if region is not None:
        v = region.villages
        extra = pd.DataFrame({c: v[c].to_numpy() for c in _VILLAGE_EXTRA if c in v.columns},
                             index=v["code"].astype(str).to_numpy()).reindex(out.index)
        at = out.columns.get_loc("village_name") + 1
        for i, col in enumerate(extra.columns):
            out.insert(at + i, col, extra[col].to_numpy())
    return out


def hazard_table(result: AssessResult | Assessment) -> pd.DataFrame:
    """Level per village (rows, region order) and hazard (columns), 0 where a hazard gave nothing.

    ``assessment.hazard_levels`` lists only levels above 0; this is its wide, complete form, for
    crosstabs per hazard.  Columns follow the rule set's hazards.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> a = SimpleNamespace(
    ...     villages=pd.DataFrame({"village_code": ["v1", "v2"]}),
    ...     hazard_levels=pd.DataFrame({"village_code": ["v2"], "hazard": ["torrent"], "level": [3]}),
    ...     ruleset=SimpleNamespace(hazards=("rainstorm", "torrent")))
    >>> hazard_table(a)  # doctest: +NORMALIZE_WHITESPACE
    hazard        rainstorm  torrent
    village_code
    v1                    0        0
    v2                    0        3
    """
    a = _assessment(result)
    codes = a.villages["village_code"].astype(str).to_numpy()
    hl = a.hazard_levels
    wide = (hl.assign(village_code=hl["village_code"].astype(str), level=hl["level"].astype(int))
            .pivot_table(index="village_code", columns="hazard", values="level", aggfunc="max"))
    hazards = list(a.ruleset.hazards) + [h for h in wide.columns if h not in a.ruleset.hazards]
    wide = wide.reindex(index=codes, columns=hazards).fillna(0).astype(int)
    wide.index.name, wide.columns.name = "village_code", "hazard"
    return wide


def _levels(levels: pd.DataFrame | pd.Series) -> pd.Series:
    s = levels["level"] if isinstance(levels, pd.DataFrame) else levels
    values = np.asarray(s, dtype=float)
    if np.isnan(values).any() or not np.isin(values, list(range(5))).all():
        raise InputError("levels must be whole numbers 0-4 (none … red) with no gaps")
    return s.astype(int)


def level_counts(levels: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """Villages (and people, households when the frame has them) per level, every level 0-4 listed.

    Examples
    --------
    >>> frame = pd.DataFrame({"level": [4, 4, 1], "population": [100, 50, 7]})
    >>> level_counts(frame)  # doctest: +NORMALIZE_WHITESPACE
           color color_zh grade  villages  population
    level
    0       none        无              0           0
    1       blue       蓝色     Ⅳ         1           7
    2     yellow       黄色     Ⅲ         0           0
    3     orange       橙色     Ⅱ         0           0
    4        red       红色     Ⅰ         2         150
    """
    lv = _levels(levels)
    index = pd.Index(range(5), name="level")
    levels_ = [Level(i) for i in index]
    out = pd.DataFrame({"color": [lv.color for lv in levels_], "color_zh": [lv.color_zh for lv in levels_],
                        "grade": [lv.grade for lv in levels_]}, index=index)
    out["villages"] = lv.value_counts().reindex(index, fill_value=0).astype(int)
    if isinstance(levels, pd.DataFrame):
        for col in ("population", "households"):
            if col in levels.columns:
                out[col] = levels.groupby(lv)[col].sum().reindex(index, fill_value=0).astype(int)
    return out


def compare_levels(before: pd.DataFrame | pd.Series, after: pd.DataFrame | pd.Series) -> pd.DataFrame:
    """Crosstab of villages by level before (rows) and after (columns), all five levels on both axes.

    ``before`` and ``after`` are level Series (or frames with a ``level`` column) indexed by
    village code; they must hold the same villages.  The diagonal counts unchanged villages.

    Examples
    --------
    >>> b = pd.Series([4, 3, 3, 0], index=list("abcd"))
    >>> compare_levels(b, pd.Series([4, 4, 3, 0], index=list("abcd")))  # doctest: +NORMALIZE_WHITESPACE
    after   none  blue  yellow  orange  red
    before
    none       1     0       0       0    0
    blue       0     0       0       0    0
    yellow     0     0       0       0    0
    orange     0     0       0       1    1
    red        0     0       0       0    1
    """
    b, a = _levels(before), _levels(after)
    if not b.index.equals(a.index):
        if set(b.index) != set(a.index):
            raise InputError("compare_levels: before and after hold different villages")
        a = a.reindex(b.index)
    cat = pd.CategoricalDtype(list(LEVEL_LABELS), ordered=True)
    rows = pd.Series(np.asarray(LEVEL_LABELS)[b.to_numpy()], name="before").astype(cat)
    cols = pd.Series(np.asarray(LEVEL_LABELS)[a.to_numpy()], name="after").astype(cat)
    table = pd.crosstab(rows, cols, dropna=False)
    table = table.reindex(index=list(LEVEL_LABELS), columns=list(LEVEL_LABELS), fill_value=0)
    table.index = pd.Index(list(LEVEL_LABELS), name="before")
    table.columns = pd.Index(list(LEVEL_LABELS), name="after")
    return table.astype(int)


def copy_rules(destination: str | os.PathLike[str], source: Any = None) -> Path:
    """Copy a rules folder (the packaged defaults when ``source`` is None) to edit it.

    Copies every ``*.yaml``/``*.yml``/``*.md`` file (rules, routing, templates, notes); works when the
    package is installed as a zip too.  ``destination`` is created; it must not already hold rule files.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> d = copy_rules(Path(folder.name) / "warning_rules")
    >>> "rainstorm.yaml" in {p.name for p in d.iterdir()}
    True
    >>> copy_rules(d)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    riskmap.errors.InputError: .../warning_rules: already holds rule files; copy into a new folder
    >>> folder.cleanup()
    """
    from riskmap.rules import packaged_rules_dir

    src = packaged_rules_dir() if source is None else source
    src = src if hasattr(src, "iterdir") and not isinstance(src, str) else Path(src)
    dest = Path(destination)
    if dest.is_dir() and any(p.suffix in (".yaml", ".yml") for p in dest.iterdir()):
        raise InputError(f"{dest}: already holds rule files; copy into a new folder")
    try:
        dest.mkdir(parents=True, exist_ok=True)
        for entry in sorted(src.iterdir(), key=lambda e: e.name):
            if entry.is_file() and entry.name.endswith(_RULE_SUFFIXES):
                (dest / entry.name).write_bytes(entry.read_bytes())
    except OSError as exc:
        raise RiskmapIOError(f"{dest}: cannot copy the rules from {src}: {exc}") from exc
    return dest


def reassess(evaluation: Evaluation, rules: RuleSet | str | os.PathLike[str] | Any,
             settings: Settings | None = None) -> AssessResult:
    """Re-run only the rule stage of an evaluation with other rules (same rainfall, context, ``now``).

    Parameters
    ----------
    evaluation
        From :func:`riskmap.cycle.evaluate_cycle`.
    rules
        A loaded :class:`~riskmap.rules.RuleSet`, or a rules folder (read with
        :func:`~riskmap.rules.load_rules`; a bad file raises :class:`~riskmap.errors.RuleError`).
    settings
        The settings the evaluation ran with (effective rainfall, language, time zone); defaults
        when None.

    Returns
    -------
    riskmap.assess.AssessResult
        As ``evaluation.result``; see the module example.
    """
    from riskmap.assess import assess
    from riskmap.rules import RuleSet, load_rules

    ruleset = rules if isinstance(rules, RuleSet) else load_rules(rules)
    rf = evaluation.rainfall
    return assess(rf.region, evaluation.context, rf.rain, ruleset, settings or Settings(), rf.now,
                  grid=rf.grid, weights=rf.weights)
