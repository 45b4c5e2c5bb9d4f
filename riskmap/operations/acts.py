"""Manual acts: what ``--village`` / ``--feature`` name, and the renderer that makes their SMS and CAP."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from riskmap.errors import InputError


def target_villages(villages: Sequence[str], features: Sequence[str],
                    region: Any = None) -> tuple[tuple[str, ...], str]:
    """Village codes named by ``--village`` and ``--feature`` (in order, no repeats) and a target label.

    Without a region only 12-digit village codes are accepted; with one, each code must exist and
    features resolve with :func:`riskmap.targets.resolve_target` (a detention area → every village
    in it; ``reservoirs:ID`` → the villages of the reservoir's downstream zones).

    >>> target_villages(["330110001001", "330110001001"], [])
    (('330110001001',), 'village:330110001001')
    >>> target_villages([], ["detention_areas:D1"])
    Traceback (most recent call last):
    ...
    riskmap.errors.InputError: --feature detention_areas:D1: a feature target needs --region PATH (or ...)
    """
    if not villages and not features:
        raise InputError("--village / --feature: name at least one village code or LAYER:ID feature")
    codes: list[str] = []
    for v in villages:
        code = v.strip().removeprefix("village:")
        if not (len(code) == 12 and code.isdigit()):
            raise InputError(f"--village {v!r}: a village code has 12 digits")
        if region is not None:
            from riskmap.targets import resolve_target

            resolve_target(region, code)  # raises when the region has no such village
        codes.append(code)
    for f in features:
        layer, sep, ident = f.partition(":")
        if not sep or not layer.strip() or not ident.strip():
            raise InputError(f"--feature {f!r}: write it as LAYER:ID, e.g. detention_areas:D1")
        if region is None:
            raise InputError(f"--feature {f}: a feature target needs --region PATH (or paths.region)")
        from riskmap.targets import resolve_target

        try:
            codes.extend(resolve_target(region, f.strip()))
        except InputError as exc:
            raise InputError(f"--feature {exc}") from None
    label = ",".join([*(f"village:{c}" for c in dict.fromkeys(v.strip().removeprefix("village:")
                                                              for v in villages)), *features])
    return tuple(dict.fromkeys(codes)), label


def manual_renderer(region: Any, settings: Any, rules_dir: Any, drill: bool = False) -> Any:
    """The :class:`~riskmap.render.Renderer` for manual acts: the run's routing, templates and rules."""
    from riskmap.render import Renderer
    from riskmap.routing_rules import load_routing
    from riskmap.rules import load_rules, packaged_rules_dir
    from riskmap.templates import load_templates

    rules_dir = rules_dir if rules_dir is not None else packaged_rules_dir()
    local = Path(str(rules_dir))
    routing = load_routing(local if (local / "routing.yaml").is_file() else None)
    templates = load_templates(local if (local / "templates.yaml").is_file() else None,
                               language=settings.office.language, timezone=settings.office.timezone)
    return Renderer(region, routing, templates, settings, ruleset=load_rules(rules_dir), drill=drill)
