"""A real Kannel on loopback for tests: bearerbox, smsbox and the fake SMSC.

``KannelHarness`` writes a config into a temporary folder, starts
``/usr/sbin/bearerbox``, then (once its ports accept connections) ``smsbox``
and ``/usr/lib/kannel/test/fakesmsc`` on free 127.0.0.1 ports, waits until
``status.txt`` shows the fake SMSC online and smsbox connected, and stops
everything with SIGTERM.  fakesmsc's output is captured and decoded:
``Got message N: <from to ucs-2 DATA>`` or, for a part of a long message,
``<from to udh UDH data DATA>``, DATA being UTF-16BE bytes form-encoded
(``+`` is byte 0x20).

When Kannel is missing the fixture fails under ``CI=true`` and skips otherwise.
Use it with ``from kannel_fixture import kannel  # noqa: F401``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

BEARERBOX = "/usr/sbin/bearerbox"
SMSBOX = "/usr/sbin/smsbox"
FAKESMSC = "/usr/lib/kannel/test/fakesmsc"

_GOT = re.compile(r"Got message (\d+): <(\S*) (\S*) (?:(ucs-2|text) (\S*)|udh (\S*) data (\S*))>")


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def decode_data(data: str) -> bytes:
    """fakesmsc's form-encoded bytes: ``+`` is 0x20 (not a literal plus)."""
    return urllib.parse.unquote_to_bytes(data.replace("+", "%20"))


@dataclass
class Part:
    """One SMS as the fake SMSC received it."""

    number: int
    sender: str
    to: str
    text: str
    udh: bytes = b""

    @property
    def concat(self) -> tuple[int, int, int] | None:
        """(reference, total, sequence) from an 8-bit concatenation UDH, else None."""
        u = self.udh
        if len(u) >= 6 and u[1] == 0 and u[2] == 3:
            return u[3], u[4], u[5]
        return None


def parse_fakesmsc(output: str) -> list[Part]:
    """Every message in fakesmsc's debug output, decoded."""
    parts = []
    for m in _GOT.finditer(output):
        num, sender, to, kind, data, udh, udata = m.groups()
        if kind == "text":
            text = decode_data(data).decode("latin-1")
            parts.append(Part(int(num), sender, to, text))
        elif kind == "ucs-2":
            parts.append(Part(int(num), sender, to, decode_data(data).decode("utf-16-be")))
        else:
            raw = decode_data(udata)
            # halves of a surrogate pair may sit in different parts: keep the bytes, decode after joining
            text = raw.decode("utf-16-be", "surrogatepass")
            parts.append(Part(int(num), sender, to, text, decode_data(udh)))
    return parts


def assemble(parts: list[Part]) -> list[tuple[str, str, int]]:
    """Whole messages ``(to, text, n_parts)`` in arrival order, joining concatenated parts."""
    out: list[tuple[str, str, int]] = []
    groups: dict[tuple[str, int], list[Part]] = {}
    for p in parts:
        c = p.concat
        if c is None:
            out.append((p.to, p.text, 1))
            continue
        key = (p.to, c[0])
        groups.setdefault(key, []).append(p)
        if len(groups[key]) == c[1]:
            ps = sorted(groups.pop(key), key=lambda x: x.concat[2])  # type: ignore[index]
            raw = b"".join(x.text.encode("utf-16-be", "surrogatepass") for x in ps)
            out.append((p.to, raw.decode("utf-16-be"), len(ps)))
    return out


class KannelHarness:
    """Kannel (bearerbox + smsbox) with a fake SMSC, all on 127.0.0.1."""

    username = "riskmap"
    password = "test-secret"
    admin_password = "admin-secret"

    def __init__(self, workdir: Path, log_level: int = 1) -> None:
        self.dir = Path(workdir)
        self.log_level = log_level
        self.dir.mkdir(parents=True, exist_ok=True)
        self.admin_port = free_port()
        self.box_port = free_port()
        self.smsc_port = free_port()
        self.sendsms_port = free_port()
        self.conf = self.dir / "kannel.conf"
        self.fakesmsc_log = self.dir / "fakesmsc.out"
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._smsc_runs: list[Path] = []

    @property
    def sendsms_url(self) -> str:
        return f"http://127.0.0.1:{self.sendsms_port}/cgi-bin/sendsms"

    def write_config(self) -> None:
        store = self.dir / "store"
        self.conf.write_text(f"""\
group = core
admin-port = {self.admin_port}
admin-interface = 127.0.0.1
admin-password = {self.admin_password}
status-password = {self.admin_password}
smsbox-port = {self.box_port}
box-allow-ip = 127.0.0.1
log-file = "{self.dir / 'bearerbox.log'}"
log-level = {self.log_level}
store-type = file
store-location = "{store}"
dlr-storage = internal

group = smsc
smsc = fake
smsc-id = FAKE
port = {self.smsc_port}
connect-allow-ip = 127.0.0.1
reconnect-delay = 1

group = smsbox
bearerbox-host = 127.0.0.1
bearerbox-port = {self.box_port}
sendsms-port = {self.sendsms_port}
sendsms-interface = 127.0.0.1
log-file = "{self.dir / 'smsbox.log'}"
log-level = {self.log_level}

group = sendsms-user
username = {self.username}
password = {self.password}
max-messages = 10
concatenation = true

group = sms-service
keyword = default
text = "ok"
""", encoding="utf-8")

    # -- processes ------------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str], out: Path) -> None:
        fh = out.open("ab")
        self._procs[name] = subprocess.Popen(args, stdout=fh, stderr=subprocess.STDOUT, cwd=self.dir)
        fh.close()

    def start(self, timeout: float = 15.0) -> None:
        self.write_config()
        self._spawn("bearerbox", [BEARERBOX, str(self.conf)], self.dir / "bearerbox.out")
        _wait_port(self.box_port, timeout, self._procs["bearerbox"])
        _wait_port(self.smsc_port, timeout, self._procs["bearerbox"])
        self._spawn("smsbox", [SMSBOX, str(self.conf)], self.dir / "smsbox.out")
        self.start_smsc()
        _wait_port(self.sendsms_port, timeout, self._procs["smsbox"])
        self.wait_ready(timeout)

    def start_smsc(self, timeout: float = 15.0) -> None:
        """(Re)start the fake SMSC and wait until bearerbox shows it online."""
        log = self.dir / f"fakesmsc.{len(self._smsc_runs)}.out"
        self._smsc_runs.append(log)
        self._spawn("fakesmsc", [FAKESMSC, "-H", "127.0.0.1", "-r", str(self.smsc_port), "-i", "1", "-m", "0",
                                 "100 200 text hello"], log)
        self.wait_ready(timeout)

    def stop_smsc(self) -> None:
        """Stop the fake SMSC (SIGTERM) and wait until bearerbox notices."""
        self._stop("fakesmsc")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if f"FAKE:{self.smsc_port} (online" not in self.status():
                return
            time.sleep(0.1)
        raise AssertionError("bearerbox still shows the fake SMSC online")

    def status(self) -> str:
        url = f"http://127.0.0.1:{self.admin_port}/status.txt?password={self.admin_password}"
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_ready(self, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        st = ""
        while time.monotonic() < deadline:
            for name, p in self._procs.items():
                if p.poll() is not None:
                    raise RuntimeError(f"Kannel {name} exited with {p.returncode}; see {self.dir}")
            st = self.status()
            if f"FAKE:{self.smsc_port} (online" in st and re.search(r"smsbox:\S*, IP 127\.0\.0\.1", st):
                return
            time.sleep(0.05)
        raise RuntimeError(f"Kannel not ready after {timeout} s; status:\n{st}")

    def _stop(self, name: str) -> None:
        p = self._procs.pop(name, None)
        if p is None or p.poll() is not None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=5)

    def stop(self) -> None:
        for name in ("fakesmsc", "smsbox", "bearerbox"):
            self._stop(name)

    # -- what arrived ---------------------------------------------------------------------------
    def output(self) -> str:
        return "".join(p.read_text(encoding="utf-8", errors="replace") for p in self._smsc_runs if p.exists())

    def parts(self) -> list[Part]:
        return parse_fakesmsc(self.output())

    def messages(self) -> list[tuple[str, str, int]]:
        """Whole messages received so far: ``(to, text, n_parts)``."""
        return assemble(self.parts())

    def wait_messages(self, n: int, timeout: float = 10.0) -> list[tuple[str, str, int]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            time.sleep(0.05)
        return self.messages()


def _wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode} before port {port} opened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not open after {timeout} s")


def require_kannel() -> None:
    """Fail under CI=true, skip otherwise, when Kannel's binaries are missing."""
    missing = [p for p in (BEARERBOX, SMSBOX, FAKESMSC) if not (Path(p).exists() and os.access(p, os.X_OK))]
    if missing:
        msg = f"Kannel missing: {', '.join(missing)} (apt-get install kannel kannel-extras)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    assert shutil.which(BEARERBOX) or Path(BEARERBOX).exists()


@pytest.fixture
def kannel(tmp_path: Path) -> Iterator[KannelHarness]:
    """A started Kannel with a fake SMSC; stopped after the test."""
    require_kannel()
    h = KannelHarness(tmp_path / "kannel")
    try:
        h.start()
        yield h
    finally:
        h.stop()
