"""Precipitation units: parse a unit string into "millimetres" or "millimetres per second".

Water depth and areal mass are the same quantity for rain (1 kg m-2 of water = 1 mm), so every
accepted unit is either an **amount** (a depth: mm, cm, m, kg m-2, …) or a **rate** (an amount per
time: mm/h, mm s-1, kg m-2 s-1, m s-1, …).  :func:`parse_units` returns the factor to millimetres
(amount) or to millimetres per second (rate); anything else is refused with :class:`ForecastError`.

Grammar: factors separated by spaces, ``.`` or ``*``, each a symbol with an optional signed exponent
(``m-2``, ``m**-2``, ``m^-2``, ``m2``); ``/`` divides by the factor (or parenthesised group) after it.
Symbols: ``kg g mm cm m km s sec min h hr hour d day`` (plurals and long names of mm/m too).
Trailing words such as ``of water equivalent`` are ignored.

Examples
--------
>>> parse_units("kg m-2 s-1")
('rate', 1.0)
>>> parse_units("kg/(m^2*s)"), parse_units("mm/h"), parse_units("m")
(('rate', 1.0), ('rate', 0.0002777777777777778), ('amount', 1000.0))
>>> parse_units("kg m**-2"), parse_units("mm"), parse_units("m of water equivalent")
(('amount', 1.0), ('amount', 1.0), ('amount', 1000.0))
>>> parse_units("K")
Traceback (most recent call last):
...
riskmap.errors.ForecastError: units 'K' are not a precipitation amount or rate (mm, m, kg m-2, mm/h, \
kg m-2 s-1 …)
"""

from __future__ import annotations

import re

from riskmap.errors import ForecastError

# symbol -> (dimension, factor to the base unit: kg, mm, s)
_SYMBOLS: dict[str, tuple[str, float]] = {
    "kg": ("mass", 1.0), "g": ("mass", 1e-3),
    "mm": ("length", 1.0), "millimeter": ("length", 1.0), "millimeters": ("length", 1.0),
    "millimetre": ("length", 1.0), "millimetres": ("length", 1.0),
    "cm": ("length", 10.0), "m": ("length", 1000.0), "meter": ("length", 1000.0),
    "meters": ("length", 1000.0), "metre": ("length", 1000.0), "metres": ("length", 1000.0),
    "km": ("length", 1e6),
    "s": ("time", 1.0), "sec": ("time", 1.0), "second": ("time", 1.0), "seconds": ("time", 1.0),
    "min": ("time", 60.0), "minute": ("time", 60.0), "minutes": ("time", 60.0),
    "h": ("time", 3600.0), "hr": ("time", 3600.0), "hour": ("time", 3600.0), "hours": ("time", 3600.0),
    "d": ("time", 86400.0), "day": ("time", 86400.0), "days": ("time", 86400.0),
}
_WATER_MM_PER_KG_MM2 = 1e6
_IGNORED = re.compile(r"\b(of\s+)?(liquid\s+)?water(\s+equivalent)?\b|\blwe\b|\bwater\s+equivalent\b")
_TOKEN = re.compile(r"\s*(/|\(|\)|[A-Za-z]+(?:\s*(?:\*\*|\^)?\s*[-+]?\d+)?|[.*·])\s*")
_FACTOR = re.compile(r"([A-Za-z]+)\s*(?:\*\*|\^)?\s*([-+]?\d+)?")


def _dims(text: str) -> tuple[dict[str, int], float]:
    text = _IGNORED.sub(" ", text.strip().lower()).strip()
    pos, tokens = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(text)
        tokens.append(m.group(1))
        pos = m.end()
    powers: dict[str, int] = {}
    scale = 1.0
    sign_stack = [1]
    divide_next = False
    for tok in tokens:
        if tok in (".", "*", "·"):
            continue
        if tok == "/":
            divide_next = True
            continue
        if tok == "(":
            sign_stack.append(sign_stack[-1] * (-1 if divide_next else 1))
            divide_next = False
            continue
        if tok == ")":
            if len(sign_stack) == 1:
                raise ValueError(text)
            sign_stack.pop()
            continue
        m = _FACTOR.fullmatch(tok)
        if m is None or m.group(1) not in _SYMBOLS:
            raise ValueError(text)
        dim, factor = _SYMBOLS[m.group(1)]
        exp = int(m.group(2) or 1) * sign_stack[-1] * (-1 if divide_next else 1)
        divide_next = False
        powers[dim] = powers.get(dim, 0) + exp
        scale *= factor**exp
    if len(sign_stack) != 1:
        raise ValueError(text)
    return {k: v for k, v in powers.items() if v}, scale


def parse_units(units: str | None, where: str = "") -> tuple[str, float]:
    """Classify precipitation units.

    Parameters
    ----------
    units : str or None
        The unit string as written in the file.
    where : str
        Prefix for error messages (file and variable).

    Returns
    -------
    (kind, factor) : tuple of str and float
        ``("amount", f)`` — multiply by ``f`` to get mm; ``("rate", f)`` — multiply by ``f`` to get
        mm per second.

    Raises
    ------
    ForecastError
        No units, or units that are neither a water depth/areal mass nor its rate.
    """
    prefix = f"{where}: " if where else ""
    if units is None or not str(units).strip():
        raise ForecastError(f"{prefix}no units given: pass units= (e.g. units='mm' or units='kg m-2 s-1')")
    try:
        powers, scale = _dims(str(units))
    except ValueError:
        powers, scale = {"?": 1}, 1.0
    if powers == {"length": 1}:
        return "amount", scale
    if powers == {"mass": 1, "length": -2}:
        # scale is in kg per mm²; water is 1e-6 kg per mm³, so depth in mm = scale * 1e6
        return "amount", scale * _WATER_MM_PER_KG_MM2
    if powers == {"length": 1, "time": -1}:
        return "rate", scale
    if powers == {"mass": 1, "length": -2, "time": -1}:
        return "rate", scale * _WATER_MM_PER_KG_MM2
    raise ForecastError(
        f"{prefix}units {str(units)!r} are not a precipitation amount or rate "
        "(mm, m, kg m-2, mm/h, kg m-2 s-1 …)"
    )
