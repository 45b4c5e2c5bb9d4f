"""Offline pages: a folium Map that links nothing, the check that a page loads nothing from outside,
and the atomic writer.

Examples
--------
>>> offline_violations('<script src="https://cdn.jsdelivr.net/npm/leaflet.js"></script>') != []
True
>>> offline_violations(OfflineMap(tiles=None).get_root().render())
[]
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import folium
from branca.element import Element

from riskmap.errors import RiskmapError, RiskmapIOError


class OfflineMap(folium.Map):
    """A folium Map that links nothing: folium's CDN scripts and styles are replaced by inlined assets."""

    default_js: list[tuple[str, str]] = []
    default_css: list[tuple[str, str]] = []


class RawHtml(Element):
    """A header element rendered verbatim (no Jinja), for inlined scripts and styles."""

    def __init__(self, html: str):
        super().__init__()
        self._html = html

    def render(self, **kwargs: object) -> str:
        return self._html



_EXTERNAL = (
    re.compile(r"<script[^>]*\ssrc\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE),
    re.compile(r"<link[^>]*\shref\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE),
    re.compile(r"<(?:img|iframe|source|video|audio)[^>]*\ssrc\s*=\s*[\"']?(?:https?:)?//", re.IGNORECASE),
    re.compile(r"url\(\s*[\"']?(?:https?:)?//", re.IGNORECASE),
    re.compile(r"@import", re.IGNORECASE),
    re.compile(r"https?://[^\s\"'<>)]*(?:cdn|unpkg|jsdelivr|cloudflare|bootstrapcdn|jquery\.com|googleapis)",
               re.IGNORECASE),
)


def offline_violations(html: str, allowed: tuple[str, ...] = ()) -> list[str]:
    """Every place where the page would load something from outside (CDN scripts, styles, images, fonts).

    ``allowed`` lists URL prefixes the user chose (a configured tile server).
    """
    found = []
    for pattern in _EXTERNAL:
        for match in pattern.finditer(html):
            snippet = html[match.start(): match.start() + 160]
            if not any(a and a in snippet for a in allowed):
                found.append(snippet)
    return found


_ELEMENT_ID = re.compile(r"\b([a-z][a-z0-9_]*?_)([0-9a-f]{32})(?![0-9a-f])")


def stable_ids(page: str) -> str:
    """Replace folium's random element ids (uuid4 hex) by their order of first appearance.

    The same map then renders to the same bytes, so outputs can be compared and hashed.

    Examples
    --------
    >>> page = stable_ids("map_" + "ab" * 16 + " L.x(map_" + "ab" * 16 + ", pane_" + "cd" * 16 + ")")
    >>> page.replace("0" * 31, "")
    'map_1 L.x(map_1, pane_2)'
    """
    numbers: dict[str, str] = {}

    def renumber(match: re.Match[str]) -> str:
        key = match.group(2)
        if key not in numbers:
            numbers[key] = f"{len(numbers) + 1:032x}"
        return match.group(1) + numbers[key]

    return _ELEMENT_ID.sub(renumber, page)


def write_map(m: folium.Map, path: str | os.PathLike[str], *, allowed: tuple[str, ...] = ()) -> Path:
    """Render the map and write it atomically as one self-contained UTF-8 HTML file (stable element ids).

    Raises
    ------
    RiskmapError
        When the page would load anything from the network (a bug: every asset must be inlined).
    RiskmapIOError
        When the file cannot be written.
    """
    page = stable_ids(m.get_root().render())
    bad = offline_violations(page, allowed)
    if bad:
        raise RiskmapError(f"map {path}: the page would load from the network: {bad[0]!r}")
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".map-", suffix=".html", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        raise RiskmapIOError(f"map {target}: cannot write: {exc}") from exc
    return target


