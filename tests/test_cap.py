"""CAP 1.2 output: every message of a warning's life validates against the OASIS XSD and the extra checks."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import geopandas as gpd
import pandas as pd
import pytest
from lxml import etree
from shapely.geometry import MultiPolygon, Point, box

from riskmap.cap import (
    CapOptions,
    CapRef,
    atom_feed,
    build_message,
    build_messages,
    current_alerts,
    previous_refs,
    problems,
    validate,
    village_areas,
)
from riskmap.config import settings_from_dict
from riskmap.errors import CapError
from riskmap.lifecycle import Change, LifecyclePolicy, decide
from riskmap.store import RunMeta, Store, run_key

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
V1, V2, V3 = "469900100201", "469900100202", "469900101203"
T0 = datetime(2026, 7, 1, 0, tzinfo=UTC)
NASTY = 'Li "<&>" 村'


def h(n: float) -> datetime:
    return T0 + timedelta(hours=n)


@pytest.fixture(scope="module")
def areas():
    x0, y0 = 500000, 2500000  # UTM 49N, about 22.6 N 111 E
    village = gpd.GeoDataFrame(
        {"code": [V1, V2, V3], "name": ["双河村", NASTY, "石门村"],
         "township": ["青山镇", "青山镇", "石门乡"]},
        geometry=[box(x0, y0, x0 + 1500, y0 + 1200),
                  MultiPolygon([box(x0 + 2000, y0, x0 + 2500, y0 + 500),
                                box(x0 + 3000, y0, x0 + 3400, y0 + 400)]),
                  Point(x0 + 5000, y0 + 5000)], crs="EPSG:32649")
    return village_areas(village, tolerance_m=20)


def levels(*rows: tuple[str, int], at: datetime) -> pd.DataFrame:
    return pd.DataFrame({
        "village_code": [r[0] for r in rows], "hazard": ["torrent"] * len(rows),
        "level": [r[1] for r in rows],
        "rule": ["torrent.county"] * len(rows), "window_h": [3.0] * len(rows),
        "value_mm": [40.0 * r[1] for r in rows], "threshold_mm": [35.0 * r[1] for r in rows],
        "window_end": [pd.Timestamp(at + timedelta(hours=3))] * len(rows),
        "reason": [f"3小时雨量{40 * r[1]}毫米" for r in rows]})


def parse(xml: str) -> etree._Element:
    return etree.fromstring(xml.encode())


def test_a_warnings_life_alert_update_cancel_alert(tmp_path, areas):
    """issue -> escalate -> downgrade -> lift -> re-issue via the store; each message references the last."""
    store = Store.open(tmp_path / "riskmap.sqlite")
    options = CapOptions()
    steps = [(levels((V1, 1), at=h(0)), h(0)), (levels((V1, 3), at=h(1)), h(1)),
             (levels((V1, 1), at=h(2)), h(2)), (levels((V1, 1), at=h(8)), h(8)),
             (levels(at=h(9)), h(9)), (levels(at=h(12)), h(12)), (levels((V1, 2), at=h(13)), h(13))]
    sent = []
    for lv, now in steps:
        meta = RunMeta(now=now, source="t", rules_hash="r")
        rid = run_key(meta)
        store.begin_run(rid, meta)
        prev = store.current_warnings()
        d = decide(prev, lv, now, LifecyclePolicy())
        msgs = build_messages(d.changes, areas, options, previous=previous_refs(prev, options.sender))
        for m in msgs:
            validate(m.xml)
        store.commit_decision(rid, d, cap_rows=[m.as_row() for m in msgs])
        sent.extend(msgs)
    assert [m.msg_type for m in sent] == ["Alert", "Update", "Update", "Cancel", "Alert"]
    for before, after in zip(sent[:3], sent[1:4], strict=True):
        ref = parse(after.xml).findtext("cap:references", namespaces=NS)
        assert ref == f"{options.sender},{before.identifier},{before.sent.isoformat()}"
    assert parse(sent[4].xml).find("cap:references", NS) is None
    cancel = parse(sent[3].xml)
    assert cancel.findtext("cap:info/cap:responseType", namespaces=NS) == "AllClear"
    assert cancel.find("cap:info/cap:expires", NS) is None
    up = parse(sent[1].xml)
    codes = [up.findtext(f"cap:info/cap:{k}", namespaces=NS) for k in ("severity", "urgency", "responseType")]
    assert codes == ["Severe", "Immediate", "Prepare"]
    assert up.findtext("cap:sent", namespaces=NS) == "2026-07-01T09:00:00+08:00"
    assert up.findtext("cap:info/cap:expires", namespaces=NS) == "2026-07-01T18:00:00+08:00"  # h(1)+3h+6h UTC
    assert [m.identifier for m in store.cap_messages()] == [m.identifier for m in sent]
    assert store.current_warnings()[(V1, "torrent")].cap_identifier == sent[-1].identifier
    store.close()


def test_identifiers_are_deterministic_and_gb_style(areas):
    d = decide({}, levels((V1, 2), (V2, 2), at=h(0)), h(0), LifecyclePolicy())
    a = build_messages(d.changes, areas, CapOptions())
    b = build_messages(d.changes, areas, CapOptions())
    assert [m.identifier for m in a] == [m.identifier for m in b] and [m.xml for m in a] == [m.xml for m in b]
    assert len({m.identifier for m in a}) == 2
    head, stamp, n = a[0].identifier.split("_")
    assert head == "46990011000100" and stamp == "20260701080000" and n.isdigit()
    # a re-evaluation at the same now (another rule set) gives another identifier
    other = decide({}, levels((V1, 3), at=h(0)), h(0), LifecyclePolicy())
    assert build_message(other.changes, areas, CapOptions()).identifier != a[0].identifier


def test_names_are_escaped_and_areas_are_polygons_or_circles(areas):
    d = decide({}, levels((V2, 4), (V3, 2), at=h(0)), h(0), LifecyclePolicy())
    m2, m3 = build_messages(d.changes, areas, CapOptions())
    assert "&lt;&amp;&gt;" in m2.xml and NASTY not in m2.xml
    root = parse(m2.xml)
    assert root.findtext("cap:info/cap:area/cap:areaDesc", namespaces=NS) == "青山镇" + NASTY
    assert NASTY in root.findtext("cap:info/cap:headline", namespaces=NS)
    polys = root.findall("cap:info/cap:area/cap:polygon", NS)
    assert len(polys) == 2  # one per part of the MultiPolygon
    pairs = polys[0].text.split()
    assert pairs[0] == pairs[-1] and len(pairs) >= 4
    lat, lon = map(float, pairs[0].split(","))
    assert 22 < lat < 23 and 110.9 < lon < 111.1
    assert root.findtext("cap:info/cap:area/cap:geocode/cap:value", namespaces=NS) == V2
    circle = parse(m3.xml).findtext("cap:info/cap:area/cap:circle", namespaces=NS)
    assert circle.endswith(" 1") and parse(m3.xml).find("cap:info/cap:area/cap:polygon", NS) is None
    for m in (m2, m3):
        validate(m.xml)


def test_drill_is_exercise_and_english_when_configured(areas):
    settings = settings_from_dict({"office": {"language": "en-US"}})
    options = CapOptions.from_settings(settings)
    assert options.languages == ("zh-CN", "en-US")
    d = decide({}, levels((V1, 4), at=h(0)), h(0), LifecyclePolicy())
    m = build_message(d.changes, areas, options, drill=True)
    root = parse(m.xml)
    assert root.findtext("cap:status", namespaces=NS) == "Exercise" and m.status == "Exercise"
    langs = [i.findtext("cap:language", namespaces=NS) for i in root.findall("cap:info", NS)]
    assert langs == ["zh-CN", "en-US"]
    en = root.findall("cap:info", NS)[1]
    assert en.findtext("cap:headline", namespaces=NS).startswith("[DRILL] Qingshan")
    assert en.findtext("cap:responseType", namespaces=NS) == "Evacuate"
    assert "evacuate" in en.findtext("cap:instruction", namespaces=NS)
    validate(m.xml)


def test_group_by_township(areas):
    d = decide({}, levels((V1, 2), (V2, 2), (V3, 2), at=h(0)), h(0), LifecyclePolicy())
    msgs = build_messages(d.changes, areas, replace(CapOptions(), group_by_township=True))
    assert sorted(m.village_codes for m in msgs) == [(V1, V2), (V3,)]
    grouped = next(m for m in msgs if len(m.village_codes) == 2)
    assert len(parse(grouped.xml).findall("cap:info/cap:area", NS)) == 2
    for m in msgs:
        validate(m.xml)


def test_manual_lift_without_known_previous_message_is_still_valid(areas):
    ch = Change("lift", V1, "torrent", 3, 0, h(1), None, rule="manual:village", reason="险情排除",
                manual=True, operator="王工")
    m = build_message([ch], areas, CapOptions())
    assert m.msg_type == "Alert"  # no reference known: an all-clear Alert, never a Cancel without references
    assert "王工" in m.xml
    validate(m.xml)
    ref = CapRef("qingshan-fxb@example.invalid", "46990011000100_20260701080000_1", h(0))
    cancel = build_message([ch], areas, CapOptions(), previous={(V1, "torrent"): ref})
    assert cancel.msg_type == "Cancel" and cancel.references.endswith(",2026-07-01T08:00:00+08:00")
    validate(cancel.xml)


def _alert(**parts: str) -> str:
    p = {"identifier": "id-1", "sender": "s@example.invalid", "sent": "2026-07-01T08:00:00+08:00",
         "msgType": "Alert", "references": "", "area": "<circle>22.5,111.0 1</circle>"} | parts
    refs = f"<references>{p['references']}</references>" if p["references"] else ""
    return (f'<alert xmlns="{NS["cap"]}"><identifier>{p["identifier"]}</identifier>'
            f'<sender>{p["sender"]}</sender>'
            f'<sent>{p["sent"]}</sent><status>Actual</status><msgType>{p["msgType"]}</msgType>'
            f'<scope>Public</scope>{refs}<info><category>Met</category><event>e</event>'
            f'<urgency>Expected</urgency>'
            f'<severity>Minor</severity><certainty>Likely</certainty><area><areaDesc>a</areaDesc>{p["area"]}'
            f'</area></info></alert>')


@pytest.mark.parametrize(("parts", "expected"), [
    ({}, None),
    ({"sent": "2026-07-01T00:00:00Z"}, "XSD"),
    ({"identifier": "a,b"}, "identifier 'a,b'"),
    ({"sender": "s &amp; t"}, "sender"),
    ({"msgType": "Update"}, "needs references"),
    ({"msgType": "Cancel", "references": "s,id-0"}, "triple"),
    ({"msgType": "Cancel", "references": "s,id-0,2026-07-01T00:00:00Z"}, "YYYY-MM-DD"),
    ({"area": "<polygon>22.5,111.0 22.6,111.0 22.6,111.1 22.5,111.1</polygon>"}, "not closed"),
    ({"area": "<polygon>22.5,111.0 22.6,111.0 22.5,111.0</polygon>"}, "at least 4"),
    ({"area": "<polygon>95,111.0 22.6,111.0 22.6,111.1 95,111.0</polygon>"}, "outside WGS 84"),
    ({"area": "<polygon>22.5 111.0 22.6 111.0 22.6 111.1 22.5 111.0</polygon>"}, "not a 'lat,lon' pair"),
    ({"area": "<circle>22.5,111.0</circle>"}, "not 'lat,lon radius'"),
    ({"area": "<circle>22.5,111.0 -1</circle>"}, "negative radius"),
])
def test_validator_checks_what_the_xsd_does_not(parts, expected):
    found = problems(_alert(**parts))
    if expected is None:
        assert found == []
    else:
        assert any(expected in p for p in found), found
        with pytest.raises(CapError, match="CAP message"):
            validate(_alert(**parts))


def test_atom_feed_of_current_alerts(areas):
    d1 = decide({}, levels((V1, 2), (V2, 3), at=h(0)), h(0), LifecyclePolicy())
    m1 = build_messages(d1.changes, areas, CapOptions())
    refs = {(m.village_codes[0], "torrent"): CapRef(CapOptions().sender, m.identifier, m.sent) for m in m1}
    lift = Change("lift", V1, "torrent", 2, 0, h(5), None, reason="雨停")
    m2 = build_message([lift], areas, CapOptions(), previous=refs)
    rows = [m.as_row() for m in [*m1, m2]]
    current = current_alerts(rows)
    assert [r.village_codes for r in current] == [(V2,)]
    feed = atom_feed(current, title="青山县 <当前预警>", updated=h(5), author="青山县防指", href="cap/")
    root = etree.fromstring(feed)
    atom = {"a": "http://www.w3.org/2005/Atom"}
    entries = root.findall("a:entry", atom)
    assert len(entries) == 1 and root.findtext("a:title", namespaces=atom) == "青山县 <当前预警>"
    assert entries[0].find("a:link", atom).get("href") == f"cap/{current[0].identifier}.xml"
    assert "橙色预警" in entries[0].findtext("a:title", namespaces=atom)
    assert entries[0].findtext("a:updated", namespaces=atom) == "2026-07-01T08:00:00+08:00"


def test_internal_levels_are_restricted_and_actions_lead_the_instruction(areas):
    lv = levels((V1, 1), (V2, 3), at=h(0)).assign(internal=[True, False], action=["", "停产撤人"])
    d = decide({}, lv, h(0), LifecyclePolicy())
    internal, public = build_messages(d.changes, areas, CapOptions())
    root = parse(internal.xml)
    assert root.findtext("cap:scope", namespaces=NS) == "Restricted"
    assert "内部" in root.findtext("cap:restriction", namespaces=NS)
    assert parse(public.xml).findtext("cap:info/cap:instruction", namespaces=NS).startswith("停产撤人：")
    for m in (internal, public):
        validate(m.xml)
    assert [r.identifier for r in current_alerts([internal.as_row(), public.as_row()])] == [public.identifier]
    assert len(current_alerts([internal.as_row()], public_only=False)) == 1


def test_write_cap_dir_validates_everything_first(tmp_path, areas):
    from riskmap.cap import FEED_NAME, write_cap_dir
    from riskmap.store import CapRow

    d = decide({}, levels((V1, 2), (V2, 3), at=h(0)), h(0), LifecyclePolicy())
    msgs = build_messages(d.changes, areas, CapOptions())
    paths = write_cap_dir(tmp_path / "cap", msgs, updated=h(0), title="当前预警", author="青山县防指")
    assert [p.name for p in paths] == [f"{m.identifier}.xml" for m in msgs] + [FEED_NAME]
    assert all(problems(p.read_bytes()) == [] for p in paths[:-1])
    assert etree.parse(str(paths[-1])).getroot().tag == "{http://www.w3.org/2005/Atom}feed"
    broken = msgs[0].xml.replace(msgs[0].identifier, "a b")
    bad = CapRow("bad id", "Alert", "Actual", h(0), (V1,), "torrent", broken)
    with pytest.raises(CapError, match="a b"):
        write_cap_dir(tmp_path / "other", [msgs[0], bad], updated=h(0), title="t", author="a")
    assert not (tmp_path / "other").exists()


def test_cap_settings_are_checked_when_options_are_built():
    from riskmap.errors import ConfigError

    with pytest.raises(ConfigError, match="'cap.sender'"):
        bad = settings_from_dict({"cap": {"sender": "qingshan office, fxb"}}, source="r.toml")
        CapOptions.from_settings(bad)
    with pytest.raises(ConfigError, match="'cap.unit_code' must be 3 digits"):
        CapOptions.from_settings(settings_from_dict({"cap": {"unit_code": "1"}}))
