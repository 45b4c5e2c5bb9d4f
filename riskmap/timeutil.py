"""Time conventions: aware datetimes, UTC inside, local (Asia/Shanghai) for people.

Examples
--------
>>> t = parse_instant("2024-07-15T08:00+08:00")
>>> t.isoformat()
'2024-07-15T00:00:00+00:00'
>>> parse_instant("2024-07-15T08:00")
Traceback (most recent call last):
...
riskmap.errors.InputError: time '2024-07-15T08:00' has no UTC offset: write it like 2024-07-15T08:00+08:00
>>> format_local(t, "Asia/Shanghai")
'2024年07月15日08时00分'
>>> to_utc(np.datetime64("2024-07-15T00:00")).isoformat()
'2024-07-15T00:00:00+00:00'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from riskmap.errors import InputError


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant that carries an offset; return it in UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"time {text!r} is not ISO 8601 (e.g. 2024-07-15T08:00+08:00)") from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"time {text!r} has no UTC offset: write it like 2024-07-15T08:00+08:00")
    return value.astimezone(UTC)


def to_utc(value: Any) -> datetime:
    """An aware UTC datetime from a datetime, Timestamp, numpy datetime64 (meaning UTC) or ISO text."""
    if isinstance(value, str):
        return parse_instant(value)
    ts = pd.Timestamp(value)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.tz_convert("UTC").to_pydatetime()


def to_datetime64(value: Any) -> np.datetime64:
    """An aware instant as tz-naive numpy datetime64[ns] meaning UTC (for xarray coordinates)."""
    return np.datetime64(to_utc(value).replace(tzinfo=None), "ns")


def format_local(value: Any, tz: str = "Asia/Shanghai", style: str = "zh") -> str:
    """Format an instant for people: ``2024年07月15日08时00分`` (zh) or ``2024-07-15 08:00 CST`` (en)."""
    local = to_utc(value).astimezone(ZoneInfo(tz))
    if style == "zh":
        return local.strftime("%Y年%m月%d日%H时%M分")
    return local.strftime("%Y-%m-%d %H:%M %Z")
