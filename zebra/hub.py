"""Whether the Hugging Face hub can be asked at all, decided once and at once.

Without network, huggingface_hub retries each request five times with back-off (about 25 s) and
logs every retry, before datasets or transformers report a failure. A hub id on a machine that
cannot reach the hub is the commonest first-run mistake (the shipped data and models are local),
so the scripts probe the endpoint with one short TCP connection before they hand a hub id over.
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from zebra.errors import ZebraError

PROBE_TIMEOUT_S = 3.0
DEFAULT_ENDPOINT = "https://huggingface.co"


def offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it (1/ON/YES/TRUE, any case)."""
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in {"1", "ON", "YES", "TRUE"}


def endpoint() -> tuple[str, int]:
    """(host, port) of the hub the libraries will ask: HF_ENDPOINT if set (a mirror), else huggingface.co."""
    url = urlsplit(os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def require_reachable(what: str) -> None:
    """A one-line error naming `what` (e.g. "--data org/name") when the hub cannot be reached.

    With HF_HUB_OFFLINE set nothing is probed: the libraries then read their local cache and say
    themselves, at once, what is not in it.
    """
    if offline():
        return
    host, port = endpoint()
    try:
        socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise ZebraError(f"{what}: cannot reach the Hugging Face hub at {host}:{port} ({reason}); pass a local "
                         "copy instead, or set HF_HUB_OFFLINE=1 to read the local Hugging Face cache") from None
