"""Load a folder of rule files into a :class:`~riskmap.rules.model.RuleSet`; find the rules folder.

Every ``*.yaml`` file of a folder whose top-level ``kind`` is ``hazard_rules`` is a rule file; files of
other kinds (``routing``, ``templates`` …, owned by other modules) are skipped, and so is a file without
``kind`` only when it is named ``routing.yaml`` or ``templates.yaml``.  A file with ``enabled: false`` is
validated but not used.  Two enabled files for one hazard are an error unless one says
``overrides: <hazard>``, which then wins (a jurisdiction's local table).  Ids must be unique across files.

Examples
--------
>>> rs = load_rules(packaged_rules_dir())
>>> rs.rule("rainstorm").id
'rainstorm-national'
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from riskmap.errors import RuleError
from riskmap.rules.model import HAZARDS, STATISTICS, HazardRule, RuleSet, SoilStateSpec
from riskmap.rules.parse import (
    CONTEXT_PARAMS,
    OTHER_FILES,
    RULE_KIND,
    _Ctx,
    _number,
    load_yaml,
    parse_rule_text,
)

__all__ = [
    "OTHER_FILES",
    "RULE_KIND",
    "build_ruleset",
    "find_rules_dir",
    "load_rules",
    "packaged_rules_dir",
    "parse_rule_text",
]


def _extras(data: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    return (data.get("context") or {}, data.get("soil_state") or {}) if isinstance(data, dict) else ({}, {})


def build_ruleset(files: Iterable[tuple[str, str]], source: str = "") -> RuleSet:
    """Validate (file name, YAML text) pairs into a :class:`RuleSet` (enabled rules, dependency order)."""
    rules: dict[str, tuple[HazardRule, bool]] = {}
    ids: dict[str, str] = {}
    context: dict[str, float] = {}
    soil: SoilStateSpec | None = None
    for file, text in files:
        rule = parse_rule_text(text, file)
        if rule is None:
            continue
        data = load_yaml(text, file)
        ctx = _Ctx(file, rule.id)
        for cid in (
            [rule.id] + [c.id for s in rule.levels for c in s.conditions] + [e.id for e in rule.escalations]
        ):
            if cid in ids:
                raise ctx.err("id", f"duplicate id {cid!r} (also in {ids[cid]})")
            ids[cid] = file
        craw, sraw = _extras(data)
        if not isinstance(craw, dict):
            raise ctx.err("context", "must map distance names to metres")
        for k, v in craw.items():
            if k not in CONTEXT_PARAMS:
                raise ctx.err(f"context.{k}", f"unknown context setting (known: {', '.join(CONTEXT_PARAMS)})")
            context[k] = _number(ctx, f"context.{k}", v, positive=False)
        if sraw:
            known = {"statistic", "normal_from_mm", "wet_from_mm"}
            if (
                not isinstance(sraw, dict)
                or set(sraw) - known
                or {"normal_from_mm", "wet_from_mm"} - set(sraw)
            ):
                raise ctx.err("soil_state", "needs normal_from_mm, wet_from_mm and optionally statistic")
            if sraw.get("statistic", "mean") not in STATISTICS:
                raise ctx.err(
                    "soil_state.statistic", f"unknown statistic {sraw['statistic']!r} (use mean or max)"
                )
            lo = _number(ctx, "soil_state.normal_from_mm", sraw["normal_from_mm"], positive=False)
            hi = _number(ctx, "soil_state.wet_from_mm", sraw["wet_from_mm"])
            if hi <= lo:
                raise ctx.err(
                    "soil_state.wet_from_mm", f"{hi:g} mm does not rise above normal_from_mm {lo:g} mm"
                )
            soil = SoilStateSpec(lo, hi, sraw.get("statistic", "mean"), file)
        if data.get("enabled", True) is False:
            continue
        overrides = "overrides" in data
        prev = rules.get(rule.hazard)
        if prev is not None:
            if overrides == prev[1]:
                raise ctx.err(
                    "hazard",
                    f"duplicate hazard {rule.hazard!r} (also in {prev[0].file}); "
                    f"disable one (enabled: false) or mark the local one 'overrides'",
                )
            if prev[1]:
                continue
        rules[rule.hazard] = (rule, overrides)
    ordered = _order([r for r, _ in rules.values()])
    return RuleSet(
        rules=tuple(ordered), soil=soil, context_params=tuple(sorted(context.items())), source=source
    )


def _order(rules: list[HazardRule]) -> list[HazardRule]:
    by = {r.hazard: r for r in rules}
    done: list[HazardRule] = []
    state: dict[str, int] = {}

    def visit(r: HazardRule, chain: tuple[str, ...]) -> None:
        if state.get(r.hazard) == 2:
            return
        if state.get(r.hazard) == 1:
            raise RuleError(
                f"{r.file}: rule '{r.id}', key 'levels': hazard levels refer to each other in a cycle "
                f"({' -> '.join(chain + (r.hazard,))})"
            )
        state[r.hazard] = 1
        for h in r.needs:
            if h not in by:
                raise RuleError(
                    f"{r.file}: rule '{r.id}', key 'levels': reads the {h!r} level but no enabled "
                    f"rule file gives hazard {h!r}"
                )
            visit(by[h], chain + (r.hazard,))
        state[r.hazard] = 2
        done.append(r)

    for r in sorted(rules, key=lambda r: list(HAZARDS).index(r.hazard)):
        visit(r, ())
    return done


def _decode(data: bytes, file: str) -> str:
    """UTF-8 (with or without BOM), else GB18030 (files saved by Chinese Windows editors)."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        raise RuleError(f"{file}: rule '?', key '(file)': neither UTF-8 nor GB18030 text") from None


def load_rules(directory: str | Path | Any) -> RuleSet:
    """Load every rule file (``*.yaml`` with ``kind: hazard_rules``) in a folder.

    ``directory`` is a path or an :mod:`importlib.resources` Traversable.
    """
    folder = (
        directory if hasattr(directory, "iterdir") and not isinstance(directory, str) else Path(directory)
    )
    if isinstance(folder, Path) and not folder.is_dir():
        raise RuleError(f"{folder}: rule '?', key '(folder)': not a folder of rule files")
    files = sorted((f for f in folder.iterdir() if f.name.endswith((".yaml", ".yml"))), key=lambda f: f.name)
    pairs = []
    for f in files:
        pairs.append((str(f), _decode(f.read_bytes(), str(f))))
    ruleset = build_ruleset(pairs, source=str(folder))
    if not ruleset.rules:
        raise RuleError(f"{folder}: rule '?', key '(folder)': no enabled rule files (kind: {RULE_KIND})")
    return ruleset


def packaged_rules_dir() -> Any:
    """The rule files shipped inside the package (a Traversable)."""
    return resources.files("riskmap").joinpath("rules_default")


def find_rules_dir(cli_value: str | Path | None, config_value: str | Path | None, cwd: str | Path) -> Any:
    """The rules folder: ``--rules``, config ``paths.rules_dir``, ``./warning_rules``, packaged defaults.

    Examples
    --------
    >>> find_rules_dir(None, None, "/nonexistent").name
    'rules_default'
    """
    for value, what in ((cli_value, "--rules"), (config_value, "paths.rules_dir")):
        if value:
            p = Path(value).expanduser()
            if not p.is_absolute():
                p = Path(cwd) / p
            if not p.is_dir():
                raise RuleError(f"{p}: rule '?', key '{what}': rules folder not found")
            return p
    local = Path(cwd) / "warning_rules"
    if local.is_dir() and any(local.glob("*.yaml")):
        return local
    return packaged_rules_dir()
