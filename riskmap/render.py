"""Turn a lifecycle decision into outbox rows (SMS) and CAP rows — pure, given the region and the rules.

:class:`Renderer` is the ``render`` callable of :func:`riskmap.store.apply.apply_run`: it is called
inside the run, with the run id, the decision and the warning states before it, and its rows are
committed in the same transaction as the decision.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from riskmap.cap import CapOptions, build_messages, previous_refs, village_areas
from riskmap.config import Settings
from riskmap.lifecycle import Change, Decision, Key, WarningState
from riskmap.messages import outbox_rows
from riskmap.region import Region
from riskmap.routing import Alert, nearest_shelters, prepare_contacts, route
from riskmap.routing_rules import Routing
from riskmap.rules import RuleSet
from riskmap.store.records import CapRow, OutboxRow
from riskmap.templates import TemplateSet


def is_internal(change: Change, ruleset: RuleSet | None) -> bool:
    """Whether a change concerns a level the rules mark internal (never sent to the public).

    The change carries the flag of the level it raises; a lift or expiry is internal when the
    level it ends is internal by the rules.
    """
    if change.internal and change.kind not in ("lift", "expire"):
        return True
    if ruleset is None:
        return False
    rule = next((r for r in ruleset.rules if r.hazard == change.hazard), None)
    if rule is None:
        return False
    lifted = change.kind in ("lift", "expire")
    spec = rule.level_spec(change.old_level if lifted else change.new_level)
    return bool(spec is not None and spec.internal)


class Renderer:
    """``render(run_id, decision, previous) -> (outbox rows, CAP rows)`` for one region and rule set.

    Internal levels go neither to CAP nor to the public (routing sends them to duty officers only).
    Contacts, shelters and CAP areas are prepared once per renderer.
    """

    def __init__(self, region: Region, routing: Routing, templates: TemplateSet, settings: Settings, *,
                 ruleset: RuleSet | None = None, drill: bool = False) -> None:
        self.region, self.routing, self.templates, self.settings = region, routing, templates, settings
        self.ruleset, self.drill = ruleset, drill
        self.contacts = prepare_contacts(region, drill)
        self.shelters = nearest_shelters(region)
        self.areas = village_areas(region.villages)
        self.cap_options = CapOptions.from_settings(settings)

    def __call__(self, run_id: str, decision: Decision,
                 previous: Mapping[Key, WarningState]) -> tuple[Sequence[OutboxRow | Mapping[str, Any]],
                                                                Sequence[CapRow]]:
        changes = list(decision.changes)
        internal = {c.key for c in changes if is_internal(c, self.ruleset)}
        alerts = [Alert.from_change(c, internal=c.key in internal) for c in changes]
        recipients = route(alerts, self.region, self.routing, drill=self.drill, shelters=self.shelters,
                           contacts=self.contacts)
        issued_at = changes[0].at if changes else None
        rows: list[OutboxRow] = []
        if issued_at is not None:
            rows = outbox_rows(recipients, self.templates, self.routing, run_id=run_id,
                               signature=self.settings.office.signature, issuer=self.settings.office.issuer,
                               issued_at=issued_at)
        public = [c for c in changes if c.key not in internal]
        refs = previous_refs(previous, self.cap_options.sender)
        caps = build_messages(public, self.areas, self.cap_options, previous=refs, drill=self.drill)
        return rows, [m.as_row() for m in caps]
