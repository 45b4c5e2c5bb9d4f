"""The context cache: same frame back (types too), new key when the region or distances change."""

from __future__ import annotations

import pytest
import shapely
from pandas.testing import assert_frame_equal
from test_rules_context import tiny_region

from riskmap.context import ContextParams, compute_context
from riskmap.context_cache import cached_context, context_key, region_hash
from riskmap.errors import DataWarning


def test_round_trip_keeps_types(tmp_path) -> None:
    region = tiny_region()
    fresh = compute_context(region)
    first = cached_context(region, ContextParams(), tmp_path)
    again = cached_context(region, ContextParams(), tmp_path)
    assert_frame_equal(first, fresh)
    assert_frame_equal(again, fresh)
    assert again.loc["431129100204", "reservoir_village"] == "431129100203"   # codes stay text


def test_key_changes_with_region_and_params() -> None:
    a = tiny_region()
    b = tiny_region()
    assert region_hash(a) == region_hash(b)
    b.hazard_sites.loc[0, "threatened_people"] = 121
    assert region_hash(a) != region_hash(b)
    c = tiny_region()
    c.villages.loc[0, "geometry"] = shapely.box(0, 0, 999, 1000)
    assert region_hash(a) != region_hash(c)
    assert context_key(a, ContextParams()) != context_key(a, ContextParams(hazard_site_distance_m=300))


def test_damaged_entry_is_recomputed(tmp_path) -> None:
    region = tiny_region()
    cached_context(region, ContextParams(), tmp_path)
    (csv,) = (tmp_path / "context").glob("*.csv")
    csv.write_text("garbage\n", encoding="utf-8")
    with pytest.warns(DataWarning, match="damaged context cache"):
        again = cached_context(region, ContextParams(), tmp_path)
    assert_frame_equal(again, compute_context(region))
