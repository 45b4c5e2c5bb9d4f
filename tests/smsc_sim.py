"""An SMSC simulator for the SMPP tests, run as its own process: ``python smsc_sim.py PORT OUT.jsonl``.

Built on PyPI ``smpp34``'s ``Server`` (127.0.0.1 only).  Every ``submit_sm`` is written to
OUT as a JSON line (``short_message`` hex-encoded).  Policy by destination number:
``13800009999`` rejected with ESME_RINVDSTADR (permanent), ``13800007777`` rejected with
ESME_RTHROTTLED (transient), ``13800008888`` accepted but its receipt says
``stat:UNDELIV``; everything else accepted with a ``stat:DELIVRD`` receipt.
The process prints ``READY`` once listening; stop it with SIGINT (or SIGKILL).
"""

from __future__ import annotations

import asyncio
import json
import sys

import smpp34

REJECT, THROTTLE, UNDELIV = "13800009999", "13800007777", "13800008888"


async def serve(port: int, out: str) -> None:
    server = smpp34.Server("127.0.0.1", port, system_id="SIMSMSC")
    await server.start()
    print("READY", flush=True)
    sessions: dict[str, object] = {}
    pending: set[asyncio.Future] = set()
    n = 0
    with open(out, "a", encoding="utf-8") as fh:
        while True:
            ev = await server.next()
            if isinstance(ev, smpp34.Esme):
                sessions[ev.session_id] = ev
                continue
            if not isinstance(ev, smpp34.SubmitSmEvent):
                continue
            fh.write(json.dumps({"to": ev.destination_addr, "from": ev.source_addr, "esm": ev.esm_class,
                                 "coding": ev.data_coding, "sm": bytes(ev.short_message).hex(),
                                 "dlr": ev.registered_delivery}) + "\n")
            fh.flush()
            if ev.destination_addr == REJECT:
                ev.reject(smpp34.ESME_RINVDSTADR)
                continue
            if ev.destination_addr == THROTTLE:
                ev.reject(smpp34.ESME_RTHROTTLED)
                continue
            n += 1
            mid = f"sim-{n}"
            ev.accept(mid)
            esme = sessions.get(ev.session_id)
            if esme is not None and ev.registered_delivery:
                stat = "UNDELIV" if ev.destination_addr == UNDELIV else "DELIVRD"
                dates = "submit date:2607221200 done date:2607221200"
                text = f"id:{mid} sub:001 dlvrd:001 {dates} stat:{stat} err:000"
                fut = asyncio.ensure_future(esme.deliver_sm(ev.source_addr or "0", text.encode(),
                                                            source_addr=ev.destination_addr, esm_class=0x04))
                pending.add(fut)
                fut.add_done_callback(lambda f: (pending.discard(f), f.exception()))


if __name__ == "__main__":
    try:
        asyncio.run(serve(int(sys.argv[1]), sys.argv[2]))
    except KeyboardInterrupt:
        pass
