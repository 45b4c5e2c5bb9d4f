"""RegionCache: a region loaded once, reloaded when a file changes, the last good one kept on error."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from region_data import valid_layers, write_dir

from riskmap.errors import RegionError
from riskmap.region import load_region
from riskmap.region_cache import LoadedRegion, RegionCache, files_hash
from riskmap.weights_cache import village_layer_key


class CountingLoader:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, path: Path):
        self.calls += 1
        return load_region(path)


def bump(path: Path) -> None:
    """Make a file look edited (a later mtime), as a copy over it does."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


@pytest.fixture()
def region_dir(tmp_path: Path) -> Path:
    return write_dir(valid_layers(), tmp_path / "region")


def test_loaded_once_and_kept_while_no_file_changes(region_dir: Path):
    loader = CountingLoader()
    cache = RegionCache(loader)
    a = cache.get(region_dir)
    b = cache.get(str(region_dir))
    assert a is b and loader.calls == 1
    assert a.content_hash == files_hash([region_dir])
    # the layer key is hashed at load, once, and is the key of the village layer
    assert "village_key" in a.region.__dict__
    assert a.region.village_key == village_layer_key(a.region.villages)


def test_an_edited_or_added_file_reloads(region_dir: Path):
    loader = CountingLoader()
    cache = RegionCache(loader)
    a = cache.get(region_dir)
    layers = valid_layers()
    layers["villages"].loc[0, "name"] = "东村新"
    write_dir({"villages": layers["villages"]}, region_dir)
    b = cache.get(region_dir)
    assert b is not a and loader.calls == 2
    assert b.region.villages["name"].iloc[0] == "东村新" and b.content_hash != a.content_hash
    assert b.region.village_key == a.region.village_key          # geometry and codes unchanged
    moved = valid_layers()["villages"]
    moved.geometry = moved.geometry.translate(0.001, 0.0)
    write_dir({"villages": moved}, region_dir)
    c = cache.get(region_dir)
    assert c.region.village_key != b.region.village_key         # new cached weights for new geometry
    (region_dir / "notes.txt").write_text("新增")
    assert cache.get(region_dir) is not c and loader.calls == 4


def test_a_broken_edit_raises_without_keep_last_good(region_dir: Path):
    cache = RegionCache()
    cache.get(region_dir)
    (region_dir / "villages.geojson").write_text("{ not json")
    with pytest.raises(RegionError):
        cache.get(region_dir)


def test_serve_keeps_the_last_good_region_and_logs_once(region_dir: Path, caplog):
    loader = CountingLoader()
    cache = RegionCache(loader, keep_last_good=True)
    good = cache.get(region_dir)
    villages = region_dir / "villages.geojson"
    original = villages.read_bytes()
    villages.write_text("{ not json")
    with caplog.at_level(logging.ERROR, logger="riskmap.region"):
        assert cache.get(region_dir) is good
        assert cache.get(region_dir) is good           # not loaded again while the files stay broken
    assert loader.calls == 2
    errors = [r for r in caplog.records if r.name == "riskmap.region"]
    assert len(errors) == 1 and "does not load" in errors[0].getMessage()
    assert "villages" in errors[0].getMessage()        # names the broken layer
    villages.write_bytes(original)
    bump(villages)
    fixed = cache.get(region_dir)
    assert fixed is not good and loader.calls == 3


def test_no_region_loaded_before_raises_even_when_keeping(tmp_path: Path):
    with pytest.raises(RegionError):
        RegionCache(keep_last_good=True).get(tmp_path / "missing.gpkg")


def test_loaded_region_load_is_what_a_cycle_uses(region_dir: Path):
    lr = LoadedRegion.load(region_dir)
    assert lr.path == region_dir and len(lr.region.villages) == 4 and lr.fingerprint


def test_a_geopackage_edited_in_wal_mode_reloads_before_the_checkpoint(tmp_path: Path):
    """QGIS keeps edits in ``region.gpkg-wal`` until a checkpoint; readers see them, so must the cache."""
    import sqlite3

    from region_data import write_gpkg

    gpkg = write_gpkg(valid_layers(), tmp_path / "region.gpkg")
    cache = RegionCache()
    before = cache.get(gpkg)
    conn = sqlite3.connect(gpkg)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        mtime = gpkg.stat().st_mtime_ns
        with conn:
            conn.execute("UPDATE contacts SET name = '王县长' WHERE name = '王县'")
        assert (tmp_path / "region.gpkg-wal").stat().st_size > 0
        os.utime(gpkg, ns=(mtime, mtime))          # the main file looks untouched
        after = cache.get(gpkg)
    finally:
        conn.close()
    assert after is not before
    assert "王县长" in after.region.contacts["name"].tolist()
