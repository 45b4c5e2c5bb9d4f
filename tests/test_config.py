"""Settings: the documented example loads, every typo is one clear line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskmap.config import Settings, load_settings
from riskmap.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "riskmap.example.toml"


def test_documented_example_equals_the_defaults() -> None:
    s = load_settings(EXAMPLE)
    assert s == Settings(source=str(EXAMPLE))


@pytest.mark.parametrize(("text", "needle"), [
    ("[office]\nissuer = 3\n", "'office.issuer' must be text"),
    ("[offce]\n", "unknown section [offce]"),
    ("[rainfall]\nwindows_h = [1, -3]\n", "'rainfall.windows_h' must be positive"),
    ("[rainfall]\neffective_k = 1.5\n", "'rainfall.effective_k' must be in (0, 1]"),
    ("[rainfall]\nday_boundary = '8h'\n", "'rainfall.day_boundary' must be HH:MM"),
    ("[office]\ntimezone = 'Asia/Beijing'\n", "not a known time zone"),
    ("[office]\narea_code = '4699'\n", "'office.area_code' must be 6 digits"),
    ("[gateway]\nkind = 'sms'\n", "'gateway.kind' must be"),
    ("[lifecycle]\nhold_h = [1, 2]\n", "'lifecycle.hold_h' must have 4 items"),
    ("[cap]\nlanguages = ['fr-FR']\n", "'cap.languages'"),
    ("[paths]\nregion = 3\n", "'paths.region' must be text"),
    ("[office\n", "not valid TOML"),
])
def test_typos_name_file_and_key(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "riskmap.toml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_settings(p)
    assert str(p) in str(err.value) and needle in str(err.value)
    assert len(str(err.value).splitlines()) == 1


def test_service_section_is_left_to_the_service(tmp_path: Path) -> None:
    p = tmp_path / "riskmap.toml"
    p.write_text("[office]\nsignature = '测试防指'\n[service]\ninbox = 'in'\n", encoding="utf-8")
    assert load_settings(p).office.signature == "测试防指"


def test_missing_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="settings file not found") as err:
        load_settings(tmp_path / "nope.toml")
    assert err.value.exit_code == 2
