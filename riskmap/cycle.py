"""One warning cycle end to end: the guts of ``riskmap run`` and ``riskmap demo``.

The IO edge around the pure core: it reads the rules, the region and the forecast,
loads or builds the cached coverage weights, computes the assessment
(:func:`riskmap.assess.assess`), applies the decision to the store in one
transaction (:func:`riskmap.store.apply.apply_run`: run, warnings, events, outbox and
CAP rows together), hands queued SMS to the gateway, and writes the outputs
(:mod:`riskmap.outputs`).  A run that fails is recorded as failed and changes
nothing else; the same inputs run twice write no new event.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from riskmap.config import Settings
from riskmap.errors import InputError
from riskmap.service.faults import fault_point  # fault injection (#7)
from riskmap.timeutil import to_utc

Progress = Callable[[str], None]
"""Called with the name of each stage as it starts."""

STAGES = ("rules", "region", "forecast", "weights", "rainfall", "context", "assess", "store", "dispatch",
          "outputs")


@dataclass(frozen=True)
class CycleRequest:
    """What one cycle runs on."""

    region: Path
    forecast: tuple[Path, ...]
    out_dir: Path
    settings: Settings = field(default_factory=Settings)
    rules_dir: Any = None
    """A folder (or packaged resource folder) of rule files; None = the packaged defaults."""
    observed: Path | None = None
    db_url: str = ""
    """SQLAlchemy URL or path; empty = ``settings.store.url``, else ``OUT/riskmap.sqlite``."""
    now: datetime | None = None
    """Aware instant; None = the forecast's reference time (reproducible runs)."""
    forecast_options: Mapping[str, Any] = field(default_factory=dict)
    drill: bool = False
    write_map: bool = True
    refuse_if_held: bool = True
    """Refuse (exit 4) when a running ``serve`` holds the store; the service itself sets False."""
    dispatch: bool = True
    """Hand queued SMS to the gateway now; ``serve`` leaves this to its own dispatcher."""
    loaded_region: Any = None
    """The region at ``region`` already loaded (a :class:`riskmap.region_cache.LoadedRegion`,
    which ``serve`` keeps between forecasts); None = load it now."""


@dataclass(frozen=True)
class CycleReport:
    """What a cycle did, for the summary the CLI prints."""

    run_id: str
    now: datetime
    already_done: bool
    villages: int
    per_level: Mapping[int, int]
    hazards: Mapping[str, int]
    changes: Mapping[str, int]
    messages_queued: int
    messages_held: int
    sms_sent: int
    sms_failed: int
    cap_messages: int
    files: Mapping[str, Path]
    seconds: Mapping[str, float]
    db_url: str


def rules_hash(rules_dir: Any) -> str:
    """A hash of every rule, routing and template file in a rules folder (the rule-set version)."""
    h = hashlib.sha256()
    for entry in sorted(rules_dir.iterdir(), key=lambda e: e.name):
        if entry.name.endswith((".yaml", ".yml")):
            h.update(entry.name.encode())
            h.update(entry.read_bytes())
    return h.hexdigest()[:32]


def default_db_url(req: CycleRequest) -> str:
    """The store URL a request uses."""
    return req.db_url or req.settings.store.url or f"sqlite:///{(req.out_dir / 'riskmap.sqlite').resolve()}"


class _Timer:
    def __init__(self, progress: Progress | None) -> None:
        self.seconds: dict[str, float] = {}
        self.progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress:
            self.progress(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


@dataclass(frozen=True, eq=False)
class Rainfall:
    """A region, its forecast (merged with observed rain) and the per-village rainfall."""

    region: Any
    grid: Any
    now: datetime
    weights: Any
    rain: Any
    region_hash: str = ""
    """Hash of the region's files (recorded with the run)."""


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Everything a cycle computed before touching the store."""

    rainfall: Rainfall
    settings: Settings
    rules_dir: Any
    ruleset: Any
    routing: Any
    templates: Any
    context: Any
    result: Any
    """:class:`riskmap.assess.AssessResult`."""


def compute_rainfall(req: CycleRequest, timer: _Timer | None = None) -> Rainfall:
    """Load the region and forecast (normalised once), then per-village rainfall from cached weights."""
    from riskmap.forecast import merge_observed, open_forecast, open_observed
    from riskmap.grid import GridDef
    from riskmap.rainfall import village_rainfall
    from riskmap.region_cache import LoadedRegion
    from riskmap.weights_cache import cached_coverage_weights

    timer = timer or _Timer(None)
    with timer.stage("region"):
        loaded = req.loaded_region or LoadedRegion.load(req.region)
        region = loaded.region
    with timer.stage("forecast"):
        if not req.forecast:
            raise InputError("run: no forecast file given (--forecast)")
        source = req.forecast[0] if len(req.forecast) == 1 else list(req.forecast)
        grid = open_forecast(source, **dict(req.forecast_options))
        now = to_utc(req.now if req.now is not None else grid.attrs["reference_time"])
        if req.observed is not None:
            observed = open_observed(req.observed, like=grid, tz=req.settings.office.timezone,
                                     **dict(req.forecast_options))
            grid = merge_observed(observed, grid, now)
    fault_point("after-ingest")  # fault point (#7)
    with timer.stage("weights"):
        cache = Path(req.settings.paths.cache_dir).expanduser()
        weights = cached_coverage_weights(cache, region.villages, GridDef.from_dataarray(grid),
                                          layer_key=region.village_key)
    with timer.stage("rainfall"):
        rain = village_rainfall(None, grid, weights=weights)   # the layer key covers the codes in order
    return Rainfall(region, grid, now, weights, rain, loaded.content_hash)


def evaluate_cycle(req: CycleRequest, timer: _Timer | None = None) -> Evaluation:
    """Rules, rainfall, context and the assessment: the whole cycle short of the store."""
    from riskmap.assess import assess
    from riskmap.context import ContextParams
    from riskmap.context_cache import cached_context
    from riskmap.routing_rules import load_routing
    from riskmap.rules import load_rules, packaged_rules_dir
    from riskmap.templates import load_templates

    s = req.settings
    timer = timer or _Timer(None)
    with timer.stage("rules"):
        rules_dir = req.rules_dir if req.rules_dir is not None else packaged_rules_dir()
        ruleset = load_rules(rules_dir)
        local = Path(str(rules_dir))
        routing = load_routing(local if (local / "routing.yaml").is_file() else None)
        templates = load_templates(local if (local / "templates.yaml").is_file() else None,
                                   language=s.office.language, timezone=s.office.timezone)
    rf = compute_rainfall(req, timer)
    with timer.stage("context"):
        context = cached_context(rf.region, ContextParams.from_ruleset(ruleset),
                                 Path(s.paths.cache_dir).expanduser())
    with timer.stage("assess"):
        result = assess(rf.region, context, rf.rain, ruleset, s, rf.now, grid=rf.grid, weights=rf.weights)
    fault_point("after-levels")  # fault point (#7)
    return Evaluation(rf, s, rules_dir, ruleset, routing, templates, context, result)


def run_cycle(req: CycleRequest, progress: Progress | None = None) -> CycleReport:
    """Run one cycle; see the module docstring."""
    from riskmap.dispatcher import Dispatcher, DispatchPolicy, DispatchStats
    from riskmap.gateways import make_gateway
    from riskmap.lifecycle import LifecyclePolicy
    from riskmap.outputs import write_outputs
    from riskmap.region_cache import files_hash
    from riskmap.render import Renderer
    from riskmap.store import RunMeta, Store
    from riskmap.store.apply import apply_run

    s = req.settings
    timer = _Timer(progress)
    ev = evaluate_cycle(req, timer)
    region, now, result = ev.rainfall.region, ev.rainfall.now, ev.result
    levels = result.assessment.hazard_levels
    db_url = default_db_url(req)
    with timer.stage("store"):
        req.out_dir.mkdir(parents=True, exist_ok=True)
        store = Store.open(db_url)
    try:
        if req.refuse_if_held:
            from riskmap.store.hold import ensure_not_held

            ensure_not_held(store)
        with timer.stage("store"):
            meta = RunMeta(
                now=now, source=",".join(p.name for p in req.forecast),
                forecast_hash=files_hash(list(req.forecast)),
                observed_hash=files_hash([req.observed]) if req.observed else "",
                rules_hash=rules_hash(ev.rules_dir), region_hash=ev.rainfall.region_hash, drill=req.drill,
            )
            renderer = Renderer(region, ev.routing, ev.templates, s, ruleset=ev.ruleset, drill=req.drill)
            applied = apply_run(store, meta, levels, LifecyclePolicy.from_settings(s.lifecycle), renderer)
            fault_point("after-commit")  # fault point (#7)
        with timer.stage("dispatch"):
            stats = DispatchStats()
            if req.dispatch:
                gateway = make_gateway(s.gateway, out_dir=req.out_dir)
                stats = Dispatcher(store, gateway, DispatchPolicy(rate_per_s=0, concurrency=1)).drain()
        with timer.stage("outputs"):
            files = write_outputs(req.out_dir, result, region, store, applied.run_id, s, now,
                                  write_map=req.write_map, grid=ev.rainfall.grid)
        rows = store.outbox(run_id=applied.run_id)
        cap_count = len(store.cap_messages(applied.run_id))
    finally:
        store.close()
    v = result.assessment.villages
    changes: dict[str, int] = {}
    for c in applied.decision.changes if applied.decision else ():
        changes[c.kind] = changes.get(c.kind, 0) + 1
    return CycleReport(
        run_id=applied.run_id, now=now, already_done=applied.decision is None, villages=len(v),
        per_level={lv: int((v["level"] == lv).sum()) for lv in range(5)},
        hazards={str(h): int(n) for h, n in levels["hazard"].value_counts().items()},
        changes=changes, messages_queued=len(rows),
        messages_held=sum(1 for r in rows if r.status == "held"),
        sms_sent=stats.sent, sms_failed=stats.failed, cap_messages=cap_count, files=files,
        seconds=timer.seconds, db_url=db_url,
    )
