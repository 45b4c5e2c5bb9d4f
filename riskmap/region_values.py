"""Value normalisers of region columns, shared by the checker and the loader.

Vectorised over whole columns; unknown values become missing, and the checker
reports them.

Examples
--------
>>> text_column(pd.Series([510100001001.0, None, " 007 "], dtype=object)).tolist()
['510100001001', nan, '007']
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

__all__ = ["text_column", "numbers", "scale_codes", "role_ids", "soil_ids", "code_hint"]


def text_column(values: pd.Series) -> pd.Series:
    """Return *values* as text: integral numbers without ``.0``, blanks stripped, ``''`` → NaN."""
    kind = values.dtype.kind
    if kind in "iub":
        return values.astype(str)
    if kind == "f":
        out = values.astype(str)
        v = values.to_numpy(dtype=float)
        whole = np.isfinite(v) & (v == np.round(v))
        if whole.any():
            out[whole] = values[whole].astype("int64").astype(str)
        return out
    if kind == "O":
        values = values.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else v)
    out = values.astype(str).str.strip()
    return out.mask(out == "")


def code_hint(value: object) -> str:
    """Advice for a code that a spreadsheet turned into a number (``3.3011E+11``, ``330110001001.0``).

    Examples
    --------
    >>> code_hint("3.30110001E+11")
    ': Excel shortened it to scientific notation; format the column as Text and type the codes again'
    >>> code_hint("330110")
    ''
    """
    text = str(value).strip().lower()
    if re.fullmatch(r"\d(?:\.\d+)?e\+?\d+", text):
        return (": Excel shortened it to scientific notation; "
                "format the column as Text and type the codes again")
    if re.fullmatch(r"\d+\.0+", text):
        return ": stored as a decimal number; format the column as Text"
    return ""


_SOIL_ALIASES = {"dry": "dry", "normal": "normal", "wet": "wet", "较干": "dry", "干": "dry", "一般": "normal",
                 "较湿": "wet", "湿": "wet"}
"""Soil states: ids and the Chinese terms offices write (较干, 一般, 较湿)."""


def numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Parse a column as numbers: ``(float values, bad)`` where *bad* marks text that is not a number.

    Thousands separators (``1,234``) are accepted; missing cells are NaN and not bad.

    Examples
    --------
    >>> v, bad = numbers(pd.Series(["1,234", "x", None, " 5 "]))
    >>> v.tolist()[:2], bad.tolist()
    ([1234.0, nan], [False, True, False, False])
    """
    if values.dtype.kind in "iufb":
        return values.astype(float), pd.Series(False, index=values.index)
    text = text_column(values).str.replace(",", "", regex=False)
    parsed = pd.to_numeric(text, errors="coerce").astype(float)
    return parsed, parsed.isna() & text.notna()


def _lookup(values: pd.Series, table: Mapping[str, object]) -> pd.Series:
    """Map text through *table* after NFKC, stripping and lower-casing; unknown or missing → NaN."""
    keys = text_column(values).str.normalize("NFKC").str.replace(" ", "", regex=False).str.lower()
    return keys.map(table)


def scale_codes(values: pd.Series) -> pd.Series:
    """Reservoir scale names (大(1)型 … 小(2)型) or codes 1–5 → ``Int64`` codes; unknown → <NA>.

    Examples
    --------
    >>> scale_codes(pd.Series(["中型", "小（2）型", 4, "4.0", "巨型"])).tolist()
    [3, 5, 4, 4, <NA>]
    """
    from riskmap.schema import RESERVOIR_SCALES

    table: dict[str, object] = {k.lower(): v for k, v in RESERVOIR_SCALES.items()}
    table.update({str(c): c for c in range(1, 6)})
    table.update({f"{c}.0": c for c in range(1, 6)})
    return _lookup(values, table).astype("Int64")


def role_ids(values: pd.Series) -> pd.Series:
    """Contact roles as ids (``village_head`` …) from ids or Chinese names (村责任人 …); unknown → NaN.

    Examples
    --------
    >>> role_ids(pd.Series(["村责任人", "Household", "boss"])).tolist()
    ['village_head', 'household', nan]
    """
    from riskmap.schema import ROLES

    table = {**{k: k for k in ROLES}, **{v: k for k, v in ROLES.items()}}
    return _lookup(values, table).astype(str)


def soil_ids(values: pd.Series) -> pd.Series:
    """Soil states as ids (dry/normal/wet) from ids or 较干/一般/较湿; unknown → NaN.

    Examples
    --------
    >>> soil_ids(pd.Series(["较湿", "DRY", "muddy"])).tolist()
    ['wet', 'dry', nan]
    """
    return _lookup(values, _SOIL_ALIASES).astype(str)
