"""Manual acts: what ``--village`` / ``--feature`` name, the renderer that makes their SMS and CAP, and
:func:`perform_act`, the one path of a manual issue or lift (the CLI's, or ``riskmap serve``'s for it)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from riskmap.errors import InputError
from riskmap.lifecycle import HAZARDS
from riskmap.manual import ManualIssue, ManualLift


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


@dataclass(frozen=True)
class ActParams:
    """A manual issue or lift as the operator gave it, targets not yet resolved: what ``riskmap issue`` /
    ``lift`` apply themselves, or hand to ``riskmap serve`` (as the JSON of a request).

    ``hazard`` empty (a lift) means every hazard; ``now`` is ``--now`` (None: the act's time is when it
    is applied).

    >>> p = ActParams("issue", ("469900100201",), (), "torrent", "开闸分洪", "李主任", level=4)
    >>> ActParams.from_json(p.to_json()) == p, len(p.key)
    (True, 32)
    >>> p.check()
    >>> ActParams("lift", (), ("detention_areas",), "", "x", "王工").check()
    Traceback (most recent call last):
    ...
    riskmap.errors.InputError: --feature 'detention_areas': write it as LAYER:ID, e.g. detention_areas:D1
    """

    kind: str
    villages: tuple[str, ...]
    features: tuple[str, ...]
    hazard: str
    reason: str
    operator: str
    level: int = 0
    until: datetime | None = None
    drill: bool = False
    now: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (times in ISO 8601 with offset)."""
        d = asdict(self)
        d.update(villages=list(self.villages), features=list(self.features),
                 until=self.until.isoformat() if self.until else None,
                 now=self.now.isoformat() if self.now else None)
        return d

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ActParams:
        """The inverse of :meth:`to_json`."""
        d = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        d.update(villages=tuple(data.get("villages", ())), features=tuple(data.get("features", ())))
        for k in ("until", "now"):
            d[k] = datetime.fromisoformat(data[k]) if data.get(k) else None
        return cls(**d)

    @property
    def key(self) -> str:
        """A hash of the act: the same command (with the same ``--now``, or none) gives the same key."""
        text = json.dumps(self.to_json(), ensure_ascii=False, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def check(self) -> None:
        """The checks that need no region (one line naming the option, :class:`InputError`)."""
        if self.kind not in ("issue", "lift"):
            raise InputError(f"act {self.kind!r}: only issue and lift are manual acts")
        if not self.operator.strip() or not self.reason.strip():
            raise InputError("--by and --reason must not be empty")
        if self.kind == "issue" and not 1 <= self.level <= 4:
            raise InputError("--level: a manual issue needs a level above none (use `riskmap lift`)")
        if self.hazard and self.hazard not in HAZARDS:
            raise InputError(f"--hazard {self.hazard!r}: one of {', '.join(HAZARDS)}")
        if self.villages or not self.features:
            target_villages(self.villages, (), None)  # 12-digit codes, and at least one target
        for f in self.features:
            layer, sep, ident = f.partition(":")
            if not sep or not layer.strip() or not ident.strip():
                raise InputError(f"--feature {f!r}: write it as LAYER:ID, e.g. detention_areas:D1")

    def act(self, codes: tuple[str, ...], label: str, now: datetime) -> ManualIssue | ManualLift:
        """The lifecycle's act for the resolved villages at the act's time ``now``."""
        if self.kind == "lift":
            return ManualLift(label, codes, self.reason, self.operator, hazard=self.hazard)
        if self.until is not None and self.until <= now:
            raise InputError(f"--until {self.until.isoformat()}: must be after the act ({now.isoformat()})")
        return ManualIssue(label, codes, self.hazard, self.level, self.reason, self.operator,
                           valid_until=self.until)


def perform_act(store: Any, params: ActParams, now: datetime, settings: Any, region: Any = None,
                render: Any = None, on_commit: Any = None) -> tuple[Any, tuple[str, ...]]:
    """Resolve the act's targets on ``region`` and apply it at ``now`` as its own run
    (:func:`riskmap.store.apply_manual`): ``(Applied, village codes)``.

    The one path of a manual issue or lift, whether ``riskmap issue`` / ``lift`` apply it or
    ``riskmap serve`` does for them; ``render`` queues its SMS and CAP (:func:`manual_renderer`);
    ``on_commit(conn, run_id, codes)`` runs inside the act's transaction.
    """
    from riskmap.lifecycle import LifecyclePolicy
    from riskmap.store import apply_manual

    params.check()
    codes, label = target_villages(params.villages, params.features, region)
    act = params.act(codes, label, now)
    kwargs: dict[str, Any] = {} if render is None else {"render": render}
    if on_commit is not None:
        kwargs["on_commit"] = lambda conn, run_id: on_commit(conn, run_id, codes)
    applied = apply_manual(store, [act], now, LifecyclePolicy.from_settings(settings.lifecycle),
                           drill=params.drill, at=now, **kwargs)
    return applied, codes
