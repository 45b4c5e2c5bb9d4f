"""The file gateway: one JSON object per line, for the demo and dry runs.

The file *is* the delivery channel, so each line carries the real phone
number (as a real gateway would); anything logged about it is masked.  Every
line is flushed and fsynced before :meth:`FileGateway.send` answers, so an
accepted message is on disk.

Examples
--------
>>> import json, tempfile, pathlib
>>> from riskmap.gateways.base import OutgoingSms
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> gw = FileGateway(d / "sms.jsonl")
>>> gw.send(OutgoingSms("1", "13800001234", "【青山县防指】测试")).accepted
True
>>> gw.close()
>>> json.loads((d / "sms.jsonl").read_text(encoding="utf-8"))["to"]
'13800001234'
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import IO

from riskmap.errors import RiskmapIOError
from riskmap.gateways.base import OutgoingSms, SendResult, mask


class FileGateway:
    """Append each message as a JSON line to ``path`` (UTF-8, created with its folder)."""

    name = "file"

    def __init__(self, path: str | Path, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self._fh: IO[str] | None = None
        self._lock = threading.Lock()

    def _open(self) -> IO[str]:
        if self._fh is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            except OSError as exc:
                raise RiskmapIOError(f"{self.path}: cannot open the SMS file: {exc.strerror}") from None
        return self._fh

    def send(self, msg: OutgoingSms) -> SendResult:
        """Write one line ``{"id", "to", "from", "text", "segments", **meta}``."""
        record = {"id": msg.outbox_id, "to": msg.phone, "from": msg.sender, "text": msg.text,
                  "segments": msg.segments, **msg.meta}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            try:
                fh = self._open()
                fh.write(line)
                fh.flush()
                if self.fsync:
                    os.fsync(fh.fileno())
            except (OSError, RiskmapIOError) as exc:
                return SendResult.retry(f"{self.path}: write failed for {mask(msg.phone)}: {exc}")
        return SendResult.ok(f"file:{msg.outbox_id}", f"written to {self.path.name}")

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def __enter__(self) -> FileGateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
