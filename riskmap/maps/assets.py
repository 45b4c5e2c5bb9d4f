"""Vendored web assets (Leaflet and riskmap's own JS/CSS), loaded from package data and inlined.

Nothing here touches the network: the files ship inside the package under
``riskmap/assets/`` (Leaflet 1.9.4 from ``npm pack leaflet@1.9.4``, BSD-2-Clause,
licence beside it).  Images referenced by Leaflet's CSS are replaced with
``data:`` URIs so the written page needs no other file.

Examples
--------
>>> "L.version" in leaflet_js() or "Leaflet" in leaflet_js()
True
>>> "url(images/" in leaflet_css()
False
>>> "<script" in inline_script("var a = '</script>';")
True
>>> inline_script("var a = '</script>';").count("</script>")
1
"""

from __future__ import annotations

import base64
import re
from functools import cache
from importlib import resources

from riskmap.errors import RiskmapIOError

LEAFLET_VERSION = "1.9.4"
"""The vendored Leaflet release."""

_PACKAGE = "riskmap"


def read_asset(*parts: str) -> bytes:
    """Return the bytes of a packaged asset, e.g. ``read_asset("leaflet", "leaflet.js")``.

    Raises
    ------
    RiskmapIOError
        When the file is missing from the installed package (a broken install).
    """
    node = resources.files(_PACKAGE).joinpath("assets")
    for part in parts:
        node = node.joinpath(part)
    try:
        return node.read_bytes()
    except (FileNotFoundError, OSError) as exc:
        raise RiskmapIOError(
            f"packaged asset riskmap/assets/{'/'.join(parts)} is missing: reinstall riskmap"
        ) from exc


@cache
def leaflet_js() -> str:
    """The vendored ``leaflet.js`` (minified) as text."""
    return read_asset("leaflet", "leaflet.js").decode("utf-8")


@cache
def leaflet_css() -> str:
    """The vendored ``leaflet.css`` with its images inlined as ``data:`` URIs."""
    css = read_asset("leaflet", "leaflet.css").decode("utf-8")

    def _inline(match: re.Match[str]) -> str:
        name = match.group(1)
        data = base64.b64encode(read_asset("leaflet", "images", name)).decode("ascii")
        return f"url(data:image/png;base64,{data})"

    return re.sub(r"url\(images/([\w.-]+\.png)\)", _inline, css)


@cache
def riskmap_js() -> str:
    """riskmap's own map helpers (popups, feature layers, filter, legend), plain JS."""
    return read_asset("riskmap", "warning_map.js").decode("utf-8")


@cache
def riskmap_css() -> str:
    """riskmap's own map styles."""
    return read_asset("riskmap", "warning_map.css").decode("utf-8")


def inline_script(code: str) -> str:
    """Wrap JavaScript in a ``<script>`` element, neutralising any ``</script`` inside it."""
    return "<script>\n" + re.sub(r"</(script)", r"<\\/\1", code, flags=re.IGNORECASE) + "\n</script>"


def inline_style(css: str) -> str:
    """Wrap CSS in a ``<style>`` element, neutralising any ``</style`` inside it."""
    return "<style>\n" + re.sub(r"</(style)", r"<\\/\1", css, flags=re.IGNORECASE) + "\n</style>"
