"""Expire warnings on time between forecasts (:func:`riskmap.store.apply_expiry`) and publish the change.

A warning nobody renewed ends at its ``valid_until`` even when no new forecast arrives: the
service's ``expiry-check`` job calls :func:`expire_due_warnings` with the clock time (to the
minute, so a restarted check at the same minute is the same run and writes nothing new).
The expiry messages (解除) are rendered for the same contacts as the warnings, queued in the
same transaction, and the CAP feed is rewritten.  Lifting a warning because the rain has
passed needs levels, i.e. the next forecast cycle.

Examples
--------
>>> import tempfile, pathlib
>>> from datetime import datetime, timezone
>>> from riskmap.store import Store
>>> store = Store.open(pathlib.Path(tempfile.mkdtemp()) / "riskmap.sqlite")
>>> due_warnings(store, datetime(2026, 7, 1, tzinfo=timezone.utc))
[]
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from riskmap.config import Settings


def due_warnings(store: Any, now: datetime) -> list[Any]:
    """Active warnings whose validity ended by ``now``."""
    return [w for w in store.warnings(active=True) if w.valid_until is not None and w.valid_until <= now]


def make_renderer(settings: Settings, region: Any, rules_dir: Any) -> Any:
    """The message and CAP renderer of the service's (loaded) region and rules."""
    from riskmap.render import Renderer
    from riskmap.routing_rules import load_routing
    from riskmap.rules import load_rules
    from riskmap.templates import load_templates

    local = Path(str(rules_dir))
    routing = load_routing(local if (local / "routing.yaml").is_file() else None)
    templates = load_templates(local if (local / "templates.yaml").is_file() else None,
                               language=settings.office.language, timezone=settings.office.timezone)
    return Renderer(region, routing, templates, settings, ruleset=load_rules(rules_dir))


def expire_due_warnings(store: Any, renderer: Any, now: datetime, out: Path, settings: Settings) -> Any:
    """Expire what is due at ``now`` in one transaction, then rewrite the CAP files; the ``Applied``."""
    from riskmap.outputs import write_cap_files
    from riskmap.store import apply_expiry

    applied = apply_expiry(store, now, renderer)
    write_cap_files(out, store, applied.run_id, settings, now)
    return applied
