"""Twilio's `X-Twilio-Signature`: HMAC-SHA1, keyed by the account's auth token, of the public
URL, followed for a form POST by its parameters sorted by name, each name then its value.

Framework-free. A websocket upgrade is signed over the `wss://` URL from the TwiML with no
parameters; a webhook POST over the URL Twilio requested (query included) and its form
parameters. Like Twilio's own validator, the URL is tried with and without its port.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

SIGNATURE_HEADER = b"x-twilio-signature"
DEFAULT_PORTS = {"wss": 443, "https": 443, "ws": 80, "http": 80}


# A form's parameters: each name with its value, or all its values when it repeats
# (`dict(request.POST.lists())`).
FormParams = Mapping[str, str | Iterable[str]]


def compute_signature(auth_token: str, url: str) -> str:
    """The signature Twilio sends for `url` (no parameters)."""
    return compute_form_signature(auth_token, url, {})


def compute_form_signature(auth_token: str, url: str, params: FormParams) -> str:
    """The signature Twilio sends for a POST of `params` to `url`."""
    signed = url
    # As twilio's RequestValidator does: names sorted, and a repeated name's values sorted and
    # counted once each.
    for name in sorted(params):
        values = params[name]
        for value in sorted({values} if isinstance(values, str) else set(values)):
            signed += name + value
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
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
    return is_valid_form_signature(auth_token, url, {}, signature)


def is_valid_form_signature(
    auth_token: str, url: str, params: FormParams, signature: str | bytes | None
) -> bool:
    """True when `signature` is Twilio's for a POST of `params` to `url`; compared in constant
    time."""
    if not auth_token or not signature:
        return False
    if isinstance(signature, str):
        signature = signature.encode("latin-1", "replace")
    signature = signature.strip()
    matched = False
    for variant in url_variants(url):
        expected = compute_form_signature(auth_token, variant, params).encode("ascii")
        matched |= hmac.compare_digest(expected, signature)
    return matched


def header_signature(headers: Iterable[tuple[bytes, bytes]]) -> bytes | None:
    """The `X-Twilio-Signature` value from ASGI headers, or None."""
    for name, value in headers:
        if name.lower() == SIGNATURE_HEADER:
            return value
    return None
