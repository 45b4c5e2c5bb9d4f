"""Lifecycle sequences: issue -> escalate -> hold -> downgrade -> lift -> re-issue, and the edge cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from riskmap.config import Settings
from riskmap.errors import InputError
from riskmap.lifecycle import (
    Decision,
    LifecyclePolicy,
    ManualIssue,
    ManualLift,
    Silence,
    decide,
)

V1, V2 = "469900100201", "469900100202"
T0 = datetime(2026, 7, 1, 0, tzinfo=UTC)
POLICY = LifecyclePolicy(hold_h=(3.0, 3.0, 6.0, 6.0), validity_margin_h=6.0)


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def levels(*rows: tuple[str, int], at: datetime, hazard: str = "torrent",
           window_h: float = 3.0) -> pd.DataFrame:
    """Level rows whose triggering window ends 3 h after ``at``."""
    return pd.DataFrame({
        "village_code": [r[0] for r in rows], "hazard": [hazard] * len(rows), "level": [r[1] for r in rows],
        "rule": [f"torrent.l{r[1]}" for r in rows], "statistic": ["mean"] * len(rows),
        "window_h": [window_h] * len(rows), "value_mm": [20.0 * r[1] for r in rows],
        "threshold_mm": [20.0 * r[1] - 5 for r in rows],
        "window_end": [pd.Timestamp(at + timedelta(hours=3))] * len(rows),
        "reason": [f"{window_h:g} h {20 * r[1]} mm" for r in rows]})


def run(prev: Decision | dict, lv: pd.DataFrame | None, at: datetime, **kw) -> Decision:
    states = prev.new_states if isinstance(prev, Decision) else prev
    return decide(states, lv, at, POLICY, **kw)


def kinds(d: Decision) -> list[tuple[str, str, int, int]]:
    return [(c.kind, c.village_code, c.old_level, c.new_level) for c in d.changes]


def test_full_sequence_issue_escalate_hold_downgrade_lift_reissue():
    d1 = run({}, levels((V1, 1), at=h(0)), h(0))
    assert kinds(d1) == [("issue", V1, 0, 1)]
    assert d1.new_states[(V1, "torrent")].valid_until == h(3 + 6)
    d2 = run(d1, levels((V1, 3), at=h(1)), h(1))
    assert kinds(d2) == [("escalate", V1, 1, 3)]
    # lower for less than the orange hold (6 h): nothing changes, state remembers the pending level
    d3 = run(d2, levels((V1, 2), at=h(2)), h(2))
    assert kinds(d3) == []
    st = d3.new_states[(V1, "torrent")]
    assert (st.level, st.pending_level, st.pending_since) == (3, 2, h(2))
    d4 = run(d3, levels((V1, 1), at=h(5)), h(5))
    assert kinds(d4) == []
    # 6 h after the first lower run: downgrade to the highest level seen during the hold (2)
    d5 = run(d4, levels((V1, 1), at=h(8)), h(8))
    assert kinds(d5) == [("downgrade", V1, 3, 2)]
    assert d5.changes[0].valid_until == h(8 + 3 + 6)
    # level 0 (row absent) through the yellow hold (3 h) -> lift
    d6 = run(d5, levels(at=h(9)), h(9))
    assert kinds(d6) == []
    d7 = run(d6, levels(at=h(12)), h(12))
    assert kinds(d7) == [("lift", V1, 2, 0)]
    assert d7.new_states[(V1, "torrent")].state == "lifted"
    d8 = run(d7, levels((V1, 2), at=h(13)), h(13))
    assert kinds(d8) == [("issue", V1, 0, 2)]


def test_escalation_during_a_hold_is_immediate_and_cancels_the_hold():
    d = run({}, levels((V1, 3), at=h(0)), h(0))
    d = run(d, levels((V1, 1), at=h(1)), h(1))
    d = run(d, levels((V1, 4), at=h(2)), h(2))
    assert kinds(d) == [("escalate", V1, 3, 4)]
    assert d.new_states[(V1, "torrent")].pending_level is None


def test_same_level_renews_validity_and_clears_a_pending_downgrade():
    d = run({}, levels((V1, 2), at=h(0)), h(0))
    d = run(d, levels((V1, 1), at=h(1)), h(1))
    d = run(d, levels((V1, 2), at=h(2)), h(2))
    st = d.new_states[(V1, "torrent")]
    assert kinds(d) == [] and st.pending_level is None and st.valid_until == h(2 + 3 + 6)


def test_hold_runs_downgrades_after_n_consecutive_lower_runs():
    policy = LifecyclePolicy(hold_h=(99, 99, 99, 99), validity_margin_h=99, hold_runs=2)
    d = decide({}, levels((V1, 3), at=h(0)), h(0), policy)
    d = decide(d.new_states, levels((V1, 1), at=h(1)), h(1), policy)
    assert d.changes == ()
    d = decide(d.new_states, levels((V1, 1), at=h(2)), h(2), policy)
    assert kinds(d) == [("downgrade", V1, 3, 1)]


def test_repeated_run_changes_nothing_even_with_a_pending_hold():
    d = run({}, levels((V1, 3), at=h(0)), h(0))
    lv = levels((V1, 1), at=h(1))
    d1 = run(d, lv, h(1))
    d2 = run(d1, lv, h(1))
    assert d2.changes == () and dict(d2.new_states) == dict(d1.new_states)
    assert d1.new_states[(V1, "torrent")].pending_runs == 1


def test_older_run_does_not_roll_back():
    d = run({}, levels((V1, 3), at=h(5)), h(5))
    old = run(d, levels((V1, 1), (V2, 2), at=h(2)), h(2), last_run_at=h(5))
    assert old.changes == () and dict(old.new_states) == dict(d.new_states)
    # even without the global guard, a key last touched later is left alone
    old2 = run(d, levels((V1, 0), at=h(2)), h(2))
    assert old2.changes == () and old2.new_states[(V1, "torrent")] == d.new_states[(V1, "torrent")]


def test_changed_rule_set_at_the_same_now_re_evaluates():
    d = run({}, levels((V1, 1), at=h(0)), h(0))
    d2 = run(d, levels((V1, 3), at=h(0)), h(0))  # an office lowered a threshold: same forecast, same now
    assert kinds(d2) == [("escalate", V1, 1, 3)]


def test_expire_when_validity_passes_without_renewal():
    d = run({}, levels((V1, 2), at=h(0)), h(0))  # valid until h(9)
    d = run(d, None, h(1))  # manual-only decision: automatic state untouched
    assert d.changes == ()
    quiet = LifecyclePolicy(hold_h=(48, 48, 48, 48), validity_margin_h=6.0)
    e = decide(d.new_states, levels(at=h(10)), h(10), quiet)
    assert [c.kind for c in e.changes] == ["expire"]
    assert e.new_states[(V1, "torrent")].state == "expired"
    # past validity but still a lower level -> downgrade to it at once (no hold)
    f = decide(d.new_states, levels((V1, 1), at=h(10)), h(10), quiet)
    assert kinds(f) == [("downgrade", V1, 2, 1)]


def test_silence_suppresses_issue_and_escalation_but_not_lift():
    s = Silence(f"village:{V1}", (V1,), h(4), "repair works, people evacuated", "王工", h(0))
    d = run({}, levels((V1, 2), (V2, 2), at=h(0)), h(0), silences=[s])
    assert kinds(d) == [("issue", V2, 0, 2)]
    assert [(c.kind, c.village_code) for c in d.suppressed] == [("issue", V1)]
    d = run(d, levels((V1, 2), at=h(5)), h(5), silences=[s])  # silence over
    assert ("issue", V1, 0, 2) in kinds(d)


def test_manual_issue_is_not_lowered_by_automatic_runs_until_it_expires():
    act = ManualIssue("detention_areas:D1", (V1, V2), "torrent", 4, "开闸分洪", "李主任", valid_until=h(12))
    d = run({}, None, h(0), manual=[act])
    assert kinds(d) == [("issue", V1, 0, 4), ("issue", V2, 0, 4)]
    assert all(c.manual and c.operator == "李主任" for c in d.changes)
    d = run(d, levels((V1, 1), at=h(7)), h(7))
    assert kinds(d) == []
    d = run(d, levels(at=h(13)), h(13))
    assert sorted(c.kind for c in d.changes) == ["expire", "expire"]


def test_manual_lift_is_audited_and_idempotent():
    d = run({}, levels((V1, 3), at=h(0)), h(0))
    lift = ManualLift(f"village:{V1}", (V1,), "险情排除", "王工")
    d = run(d, None, h(1), manual=[lift])
    assert kinds(d) == [("lift", V1, 3, 0)] and d.changes[0].operator == "王工"
    assert run(d, None, h(1), manual=[lift]).changes == ()


def test_change_key_is_deterministic_and_distinct():
    a = run({}, levels((V1, 2), (V2, 2), at=h(0)), h(0))
    b = run({}, levels((V1, 2), (V2, 2), at=h(0)), h(0))
    assert [c.key for c in a.changes] == [c.key for c in b.changes]
    assert len({c.key for c in a.changes}) == 2


def test_policy_from_settings_and_bad_input():
    p = LifecyclePolicy.from_settings(Settings().lifecycle)
    assert p.hold(4) == timedelta(hours=6) and p.hold(1) == timedelta(hours=3)
    with pytest.raises(InputError, match="no time zone"):
        decide({}, None, datetime(2026, 7, 1), p)
    with pytest.raises(InputError, match="lacks column"):
        decide({}, pd.DataFrame({"village_code": [V1]}), T0, p)
    bad = levels((V1, 2), at=h(0)).assign(hazard="flood")
    with pytest.raises(InputError, match="unknown hazard 'flood'"):
        decide({}, bad, T0, p)
    with pytest.raises(InputError, match="level is missing"):
        decide({}, levels((V1, 2), at=h(0)).assign(level=float("nan")), T0, p)
    with pytest.raises(InputError, match="outside 0-4"):
        decide({}, levels((V1, 5), at=h(0)), T0, p)


def test_duplicate_rows_keep_the_highest_level():
    lv = pd.concat([levels((V1, 1), at=h(0)), levels((V1, 3), at=h(0))])
    assert kinds(run({}, lv, h(0))) == [("issue", V1, 0, 3)]


def _region():
    import geopandas as gpd
    from shapely.geometry import Point, box

    crs = "EPSG:32649"
    villages = gpd.GeoDataFrame(
        {"code": [V1, V2, "469900101203", "469900101204"]},
        geometry=[box(0, 0, 1000, 1000), box(1000, 0, 2000, 1000), box(2000, 0, 3000, 1000),
                  Point(5000, 500)],
        crs=crs)
    layers = {
        "detention_areas": gpd.GeoDataFrame({"id": ["D1"], "name": ["东湖蓄滞洪区"]},
                                            geometry=[box(500, 200, 2500, 800)], crs=crs),
        "reservoir_zones": gpd.GeoDataFrame({"id": ["Z1"], "reservoir_id": ["R1"]},
                                            geometry=[box(4500, 0, 5500, 1000)], crs=crs),
        "hazard_sites": gpd.GeoDataFrame({"id": ["H1", "H2"]}, geometry=[Point(1500, 500), Point(9000, 9000)],
                                         crs=crs),
    }

    class Region:
        def __init__(self):
            self.villages = villages

        def layer(self, name):
            return layers[name]

    return Region()


def test_resolve_targets_for_manual_acts():
    from riskmap.targets import resolve_target

    region = _region()
    assert resolve_target(region, "detention_areas:D1") == (V1, V2, "469900101203")
    assert resolve_target(region, "reservoirs:R1") == ("469900101204",)  # a point village in the zone
    assert resolve_target(region, "hazard_sites:H1") == (V2,)
    assert resolve_target(region, f"village:{V1}") == (V1,)
    assert resolve_target(region, "469900100") == (V1, V2)
    for bad, msg in [("hazard_sites:H2", "no village lies"), ("reservoirs:R9", "no downstream zone"),
                     ("detention_areas:X", "no feature with id X"), ("469900999999", "no village with code"),
                     ("12ab", "12-digit")]:
        with pytest.raises(InputError, match=msg):
            resolve_target(region, bad)
    # a dam 险情: red for the downstream villages, logged with the operator
    codes = resolve_target(region, "reservoirs:R1")
    act = ManualIssue("reservoirs:R1", codes, "reservoir", 4, "大坝险情", "赵工")
    d = decide({}, None, T0, POLICY, manual=[act])
    assert [(c.village_code, c.hazard, c.new_level, c.rule) for c in d.changes] == [
        ("469900101204", "reservoir", 4, "manual:reservoirs:R1")]


def test_internal_and_action_columns_reach_the_changes():
    lv = levels((V1, 1), (V2, 3), at=h(0), hazard="geohazard").assign(
        internal=[True, False], action=["", "停产撤人"])
    d = run({}, lv, h(0))
    got = [(c.village_code, c.internal, c.action) for c in d.changes]
    assert got == [(V1, True, ""), (V2, False, "停产撤人")]
    assert d.new_states[(V1, "geohazard")].internal
    # escalating to a public level clears the flag; lifting keeps the flag of what is lifted
    d = run(d, levels((V1, 2), at=h(1), hazard="geohazard").assign(internal=False, action=""), h(1))
    assert not d.changes[0].internal and not d.new_states[(V1, "geohazard")].internal
    lv0 = levels((V1, 1), at=h(0), hazard="geohazard").assign(internal=True)
    d = run(run({}, lv0, h(0)), levels(at=h(5), hazard="geohazard"), h(5))
    d = run(d, levels(at=h(8), hazard="geohazard"), h(8))
    assert [(c.kind, c.internal) for c in d.changes] == [("lift", True)]


def test_expire_due_without_new_levels():
    from riskmap.lifecycle import expire_due

    d = run({}, levels((V1, 2), (V2, 1), at=h(0)), h(0))  # both valid until h(9)
    d = run(d, levels((V1, 2), at=h(4)), h(4))  # V1 renewed until h(13); V2 pending lift
    assert expire_due(d.new_states, h(8)).changes == ()
    e = expire_due(d.new_states, h(9))
    assert [(c.kind, c.village_code, c.old_level) for c in e.changes] == [("expire", V2, 1)]
    assert e.new_states[(V2, "torrent")].state == "expired" and e.new_states[(V1, "torrent")].active
    assert expire_due(e.new_states, h(9)).changes == ()  # idempotent
