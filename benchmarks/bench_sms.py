"""Benchmark: SMS throughput through real Kannel on loopback, plain client vs riskmap (issue #6).

A Kannel (bearerbox + smsbox, Debian packages) with its fake SMSC is started on free 127.0.0.1
ports in a temporary folder (``tests/kannel_fixture.py``), delivery reports on (``dlr-mask=31``).

* (a) **plain client** — N single-segment UCS-2 messages straight to ``/cgi-bin/sendsms`` from
  8 threads, each with its own keep-alive connection: the gateway's ceiling here.  Delivery
  reports go to a minimal counting HTTP server.
* (b) **riskmap** — the same N messages committed to the outbox (a SQLite store, WAL, one
  transaction), then the dispatcher (32 workers, unthrottled; ``--riskmap-workers``) leases, sends through
  :class:`~riskmap.gateways.kannel.KannelGateway` and marks every message ``sent`` in its own
  durable transaction; delivery reports go to riskmap's :class:`~riskmap.receiver.Receiver`,
  which writes receipts to the same store.  Timed from the commit to the last ``sent`` mark.
* **latency** — with the dispatcher running as a service (idle, waiting for a wake-up), one red
  message is committed; the time from the end of that commit to the gateway's acceptance.

Each phase runs on a fresh Kannel (no backlog or store left from the other), alternating
a, b, b, a … (``--repeat`` rounds); the best rate of each is kept, since the machine may be
shared.  Printed: both rates, the ratio (target ≥ 0.8) and the latency (target < 1 s).

Usage::

    .venv/bin/python benchmarks/bench_sms.py                  # 20,000 messages
    .venv/bin/python benchmarks/bench_sms.py --messages 1000  # quick
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import json
import resource
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "tests"))

BATCH, MARK_BATCH = 500, 64
TEXT = "【青山县防指】青山镇上河村暴雨洪涝风险红色预警,请立即转移。第{i}条"  # one UCS-2 segment


class Counter(http.server.BaseHTTPRequestHandler):
    """A minimal delivery-report sink for the plain client."""

    protocol_version = "HTTP/1.1"
    hits = 0
    lock = threading.Lock()

    def do_GET(self) -> None:  # noqa: N802
        with Counter.lock:
            Counter.hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


class QuietServer(http.server.ThreadingHTTPServer):
    """Kannel closes idle report connections; that is not an error worth a traceback."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def plain_client(k, n: int, workers: int, dlr_port: int) -> float:
    """(a): seconds to get n acceptances from sendsms with `workers` keep-alive connections."""
    errors: list[str] = []

    def work(start: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", k.sendsms_port, timeout=30)
        for i in range(start, n, workers):
            q = urllib.parse.urlencode({
                "username": k.username, "password": k.password, "from": "10690001",
                "to": f"138{i:08d}", "text": TEXT.format(i=i), "charset": "UTF-8", "coding": "2",
                "dlr-mask": "31", "dlr-url": f"http://127.0.0.1:{dlr_port}/dlr?id={i}&status=%d"})
            for _ in range(3):
                try:
                    conn.request("GET", f"/cgi-bin/sendsms?{q}")
                    resp = conn.getresponse()
                    body = resp.read().decode()
                    break
                except (http.client.HTTPException, OSError):
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", k.sendsms_port, timeout=30)
            else:
                errors.append(f"{i}: no answer")
                continue
            if resp.status != 202:
                errors.append(f"{i}: {resp.status} {body}")
        conn.close()

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    dt = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"plain client: {len(errors)} errors, e.g. {errors[:3]}")
    return dt


def wait_delivered(k, n: int, timeout: float) -> int:
    """Wait until the fake SMSC has received n messages (or timeout); return the count."""
    end = time.monotonic() + timeout
    got = 0
    while time.monotonic() < end:
        got = len(k.parts())
        if got >= n:
            break
        time.sleep(0.5)
    return got


def riskmap_run(k, n: int, workers: int, workdir: Path) -> tuple[float, float, dict]:
    """(b) and the latency; returns (seconds for n, latency seconds, counts)."""
    from riskmap.dispatcher import Dispatcher, DispatchPolicy
    from riskmap.gateways.kannel import KannelGateway
    from riskmap.lifecycle import LifecyclePolicy, decide
    from riskmap.receiver import Receiver
    from riskmap.store import OutboxRow, RunMeta, Store, run_key

    store = Store.open(f"sqlite:///{workdir / 'bench.sqlite'}")
    receiver = Receiver(store, token="bench-token").start()
    gw = KannelGateway(k.sendsms_url, k.username, k.password, sender="10690001", dlr_url=receiver.dlr_url())
    accepted_at: dict[str, float] = {}

    class Timed:
        name = "kannel-timed"

        def send(self, msg):
            res = gw.send(msg)
            if res.accepted:
                accepted_at.setdefault(msg.outbox_id, time.perf_counter())
            return res

        def close(self):
            gw.close()

    def commit(rows, now):
        meta = RunMeta(now=now, source="bench", rules_hash=str(now.timestamp()))
        run = store.begin_run(run_key(meta), meta)
        store.commit_decision(run.id, decide({}, None, now, LifecyclePolicy()), rows, at=now)

    rows = [OutboxRow(idempotency_key=f"b{i}", phone=f"139{i:08d}", text=TEXT.format(i=i), level=4)
            for i in range(n)]
    policy = DispatchPolicy(rate_per_s=0, concurrency=workers, batch=BATCH, mark_batch=MARK_BATCH,
                            sweep_s=30)
    d = Dispatcher(store, Timed(), policy)
    commit(rows, datetime.now(UTC))
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    stats = d.drain()
    dt = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    drain_cpu = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / n
    if stats.sent != n:
        raise SystemExit(f"riskmap: only {stats.sent} of {n} sent ({stats.errors[:3]})")
    # latency: dispatcher idle as a service; commit one red message, wake it
    d.start()
    time.sleep(1.0)
    red_text = "【青山县防指】红色预警,请立即转移。"
    red = [OutboxRow(idempotency_key="red-1", phone="13700000001", text=red_text, level=4)]
    commit(red, datetime.now(UTC))
    t_commit = time.perf_counter()
    d.wake()
    rid = str(max(r.id for r in store.outbox()))
    end = time.monotonic() + 10
    while rid not in accepted_at and time.monotonic() < end:
        time.sleep(0.001)
    latency = accepted_at.get(rid, float("inf")) - t_commit
    d.stop()
    last, still = -1, time.monotonic()
    while time.monotonic() - still < 3.0 and receiver.counts["receipts"] < 2 * (n + 1):
        if receiver.counts["receipts"] != last:  # delivery reports lag behind: wait until they stop coming
            last, still = receiver.counts["receipts"], time.monotonic()
        time.sleep(0.2)
    counts = {"receipts": receiver.counts["receipts"], "duplicate_reports": receiver.counts["duplicates"],
              "cpu_us_per_message_while_sending": round(drain_cpu * 1e6)}
    receiver.stop()
    store.close()
    return dt, latency, counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--messages", type=int, default=20_000)
    ap.add_argument("--workers", type=int, default=8, help="plain client connections (the issue says 8)")
    ap.add_argument("--riskmap-workers", type=int, default=32,
                    help="dispatcher concurrency (with delivery reports on, Kannel answers sendsms in "
                         "~5-40 ms, so riskmap keeps more requests in flight)")
    ap.add_argument("--repeat", type=int, default=2, help="rounds of (a) and (b), alternating; best kept")
    ap.add_argument("--plain-at-riskmap-workers", action="store_true",
                    help="also run the plain client with as many connections as riskmap has workers")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()

    from kannel_fixture import KannelHarness

    n = args.messages
    rates: dict[str, list[float]] = {"a": [], "b": []}
    latencies: list[float] = []
    counts: dict = {}
    received: dict[str, int] = {}
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = ru.ru_utime + ru.ru_stime
    order = (["a", "b", "b", "a"] * ((args.repeat + 1) // 2))[: 2 * args.repeat]
    if args.plain_at_riskmap_workers:
        order.append("c")
        rates["c"] = []
    for r, phase in enumerate(order):
        # each phase on a fresh Kannel: no backlog, store or DLR traffic left from the other
        with tempfile.TemporaryDirectory(prefix="riskmap-bench-sms-") as tmp:
            k = KannelHarness(Path(tmp) / "kannel", log_level=2)
            k.start()
            sink = QuietServer(("127.0.0.1", 0), Counter)
            sink.daemon_threads = True
            threading.Thread(target=sink.serve_forever, args=(0.05,), daemon=True).start()
            try:
                if phase == "a":
                    dt = plain_client(k, n, args.workers, sink.server_address[1])
                elif phase == "c":
                    dt = plain_client(k, n, args.riskmap_workers, sink.server_address[1])
                else:
                    dt, latency, counts = riskmap_run(k, n, args.riskmap_workers, Path(tmp))
                    latencies.append(latency)
                received[f"{phase}{r}"] = wait_delivered(k, n + (phase == "b"), timeout=max(60.0, n / 50))
            finally:
                sink.shutdown()
                sink.server_close()
                k.stop()
        rates[phase].append(n / dt)
        cpu = resource.getrusage(resource.RUSAGE_SELF)
        cpu_s = cpu.ru_utime + cpu.ru_stime - cpu_before
        cpu_before += cpu_s
        print(f"  round {r + 1}: ({phase}) {n / dt:,.0f} msg/s, this process {cpu_s / n * 1e6:,.0f} µs CPU "
              "per message", flush=True)
    rate_a, rate_b, latency = max(rates["a"]), max(rates["b"]), min(latencies)
    out = {"messages": n, "workers": args.workers, "riskmap_workers": args.riskmap_workers,
           "plain_per_s": round(rate_a, 1),
           "riskmap_per_s": round(rate_b, 1), "ratio": round(rate_b / rate_a, 3),
           "red_commit_to_accept_s": round(latency, 4), "all_plain_per_s": [round(x) for x in rates["a"]],
           "all_riskmap_per_s": [round(x) for x in rates["b"]], "fakesmsc_received": received, **counts}
    print(f"(a) plain sendsms client, {args.workers} connections: {rate_a:,.0f} msg/s "
          f"(best of {len(rates['a'])})")
    print(f"(b) riskmap committed outbox → Kannel acceptance ({args.riskmap_workers} workers, durable, "
          f"receipts stored): {rate_b:,.0f} msg/s")
    print(f"ratio (b)/(a) = {rate_b / rate_a:.2f}   (target ≥ 0.8)")
    print(f"committed red decision → first SMS accepted: {latency * 1000:.1f} ms   (target < 1 s)")
    print(f"fake SMSC received {received}; riskmap receipts {counts.get('receipts')} "
          f"(duplicate reports {counts.get('duplicate_reports')})")
    if rates.get("c"):
        out["plain_at_riskmap_workers_per_s"] = round(rates["c"][0], 1)
        print(f"(reference) plain client with {args.riskmap_workers} connections: {rates['c'][0]:,.0f} msg/s")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
