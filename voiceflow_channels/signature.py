"""Twilio's `X-Twilio-Signature` for a websocket upgrade: HMAC-SHA1 of the public URL.

Framework-free. Twilio signs the `wss://` URL from the TwiML with no parameters, keyed by the
account's auth token; like Twilio's own validator, the URL is tried with and without its port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit, urlunsplit

SIGNATURE_HEADER = b"x-twilio-signature"
DEFAULT_PORTS = {"wss": 443, "https": 443, "ws": 80, "http": 80}


def compute_signature(auth_token: str, url: str) -> str:
    """The signature Twilio sends for `url` (no parameters)."""
    digest = hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> tuple[str, ...]:
    """`url` without its port and with the scheme's default port (Twilio signs either way)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    bare = urlunsplit(parts._replace(netloc=host))
    if port is None:
        return (bare,)
    return (bare, urlunsplit(parts._replace(netloc=f"{host}:{port}")))


def is_valid_signature(auth_token: str, url: str, signature: str | bytes | None) -> bool:
    """True when `signature` is Twilio's for `url`; compared in constant time."""
    if not auth_token or not signature:
        return False
    if isinstance(signature, str):
        signature = signature.encode("latin-1", "replace")
    signature = signature.strip()
    matched = False
    for variant in url_variants(url):
        expected = compute_signature(auth_token, variant).encode("ascii")
        matched |= hmac.compare_digest(expected, signature)
    return matched


def header_signature(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    """The `X-Twilio-Signature` value from ASGI headers, or None."""
    for name, value in headers:
        if name.lower() == SIGNATURE_HEADER:
            return value
    return None
