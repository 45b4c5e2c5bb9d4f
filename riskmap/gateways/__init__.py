"""SMS gateways behind one small interface (:class:`~riskmap.gateways.base.Gateway`).

- :class:`~riskmap.gateways.file.FileGateway` — JSON lines, for the demo and dry runs.
- :class:`~riskmap.gateways.kannel.KannelGateway` — Kannel HTTP sendsms.
- :class:`~riskmap.gateways.http.HttpGateway` — a generic HTTP aggregator.
- :class:`~riskmap.gateways.smpp.SmppGateway` — SMPP 3.4 straight to an SMSC.

:func:`make_gateway` builds the one named by the settings.

Examples
--------
>>> import tempfile
>>> from riskmap.config import GatewaySettings
>>> gw = make_gateway(GatewaySettings(kind="file"), out_dir=tempfile.mkdtemp())
>>> gw.name, gw.path.name
('file', 'sms.jsonl')
"""

from __future__ import annotations

from pathlib import Path

from riskmap.config import GatewaySettings
from riskmap.errors import ConfigError
from riskmap.gateways.base import Gateway, OutgoingSms, SendResult, mask

__all__ = ["Gateway", "OutgoingSms", "SendResult", "mask", "make_gateway"]


def make_gateway(gs: GatewaySettings, out_dir: str | Path = ".", dlr_url: str = "") -> Gateway:
    """Build the gateway ``gs.kind`` names.

    ``file`` writes ``OUT_DIR/sms.jsonl``; ``kannel`` sends to ``gs.url`` as
    ``gs.username`` with the password from the environment variable
    ``gs.password_env``; ``dlr_url`` (with ``{id}``) is where delivery reports go.
    ``smpp`` binds to ``gs.url`` = ``smpp://HOST:PORT`` as ``gs.username`` (system id).
    ``http`` posts to the aggregator at ``gs.url`` as the ``http_*`` settings say
    (:meth:`~riskmap.gateways.http.HttpGatewayConfig.from_settings`); credentials and the signature
    key come from the environment variables they name.
    """
    if gs.kind == "file":
        from riskmap.gateways.file import FileGateway

        return FileGateway(Path(out_dir) / "sms.jsonl")
    if gs.kind == "kannel":
        from riskmap.gateways.kannel import KannelGateway

        if not gs.url:
            raise ConfigError("gateway.url: the Kannel sendsms URL is required when gateway.kind = 'kannel'")
        return KannelGateway.from_env(gs.url, gs.username, gs.password_env, sender=gs.sender_id,
                                      dlr_url=dlr_url)
    if gs.kind == "smpp":
        import os
        import urllib.parse

        from riskmap.gateways.smpp import SmppGateway

        u = urllib.parse.urlsplit(gs.url)
        if u.scheme != "smpp" or not u.hostname or not u.port:
            raise ConfigError(f"gateway.url: {gs.url!r} must be smpp://HOST:PORT when gateway.kind = 'smpp'")
        if gs.password_env not in os.environ:
            raise ConfigError(f"gateway: environment variable {gs.password_env} (SMPP password) is not set")
        return SmppGateway(u.hostname, u.port, gs.username, os.environ[gs.password_env], sender=gs.sender_id)
    if gs.kind == "http":
        from riskmap.gateways.http import HttpGateway, HttpGatewayConfig

        return HttpGateway(HttpGatewayConfig.from_settings(gs))
    raise ConfigError(f"gateway.kind {gs.kind!r}: must be file, kannel, smpp or http")
