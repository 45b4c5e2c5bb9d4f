"""Service logs: one line per event, plain or JSON lines, with the run id and phone numbers masked.

:func:`setup_logging` configures the ``riskmap`` logger tree.  :func:`run_context` labels
every record logged inside it (any thread started inside inherits nothing: the dispatcher
logs its own outbox ids).  Mobile numbers (11 digits starting with 1, optionally +86) are
masked in every message as ``138****0000`` — a second guard beside the callers' own masking.

Examples
--------
>>> mask_text("发给 13800001234 和 +86 139 0000 5678 的短信")
'发给 138****1234 和 +86 139****5678 的短信'
>>> rec = logging.LogRecord("riskmap.service", logging.INFO, "", 0, "sent to %s", ("13800001234",), None)
>>> with run_context(run_id="abc123", file="f1.nc"):
...     _ = ContextFilter().filter(rec)
>>> d = json.loads(JsonFormatter().format(rec))
>>> d["msg"], d["run_id"], d["file"], d["level"]
('sent to 138****1234', 'abc123', 'f1.nc', 'info')
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

_PHONE = re.compile(r"(?<!\d)((?:\+?86[ -]?)?)(1[3-9]\d)[ -]?(\d{4})[ -]?(\d{4})(?!\d)")
_CONTEXT: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("riskmap_log_context",
                                                                                default=None)


def mask_text(text: str) -> str:
    """Mask every mobile number in a text."""
    return _PHONE.sub(lambda m: f"{m.group(1)}{m.group(2)}****{m.group(4)}", text)


@contextlib.contextmanager
def run_context(**fields: str) -> Iterator[None]:
    """Add ``fields`` (e.g. ``run_id``, ``file``, ``source``) to records logged inside."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: str(v) for k, v in fields.items()}})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


def set_context(**fields: str) -> None:
    """Add fields to the current context (e.g. the run id once it is known)."""
    _CONTEXT.set({**(_CONTEXT.get() or {}), **{k: str(v) for k, v in fields.items()}})


class ContextFilter(logging.Filter):
    """Copy the context fields onto each record and mask phone numbers in its message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.ctx = dict(_CONTEXT.get() or {})
        try:
            msg = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string must not kill logging
            msg = str(record.msg)
        record.msg, record.args = mask_text(msg), None
        return True


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", <context>, "exc"}`` per line."""

    def format(self, record: logging.LogRecord) -> str:
        ts = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        d: dict[str, Any] = {"ts": ts,
                             "level": record.levelname.lower(), "logger": record.name,
                             "msg": mask_text(record.getMessage())}
        d.update(getattr(record, "ctx", {}) or {})
        if record.exc_info:
            d["exc"] = mask_text(self.formatException(record.exc_info))
        return json.dumps(d, ensure_ascii=False)


class PlainFormatter(logging.Formatter):
    """``time level logger [run=…] message``."""

    def format(self, record: logging.LogRecord) -> str:
        ctx = getattr(record, "ctx", {}) or {}
        tag = " ".join(f"{k}={v}" for k, v in ctx.items())
        base = f"{self.formatTime(record, '%Y-%m-%dT%H:%M:%S')} {record.levelname:7s} {record.name}"
        line = f"{base} [{tag}] {record.getMessage()}" if tag else f"{base} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + mask_text(self.formatException(record.exc_info))
        return line


class SkipNoise(logging.Filter):
    """Drop APScheduler's "skipped: maximum number of running instances reached" (a scan still running is
    expected: ``max_instances`` 1 is the point)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in str(record.msg)


def setup_logging(json_lines: bool = False, level: int = logging.INFO, stream: Any = None) -> logging.Handler:
    """Send the ``riskmap``, ``apscheduler`` and Python-warning loggers to ``stream`` (stderr).

    Data warnings (:class:`~riskmap.errors.DataWarning` …) become log records of ``py.warnings``,
    so they carry the run context and come out as JSON lines too.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(SkipNoise())
    handler.setFormatter(JsonFormatter() if json_lines else PlainFormatter())
    logging.captureWarnings(True)
    for name in ("riskmap", "apscheduler", "py.warnings"):
        lg = logging.getLogger(name)
        lg.handlers[:] = [handler]
        lg.setLevel(level if name != "apscheduler" else max(level, logging.WARNING))
        lg.propagate = False
    return handler
