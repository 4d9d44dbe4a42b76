"""Twilio's HTTP side of a call, as the simulator plays it: the voice webhook POSTed before the
stream, the `<Connect action>` POSTed once the stream has closed, and a `<Redirect>` it answered
followed to the next `<Connect><Stream>`, each signed as Twilio signs.

Framework-free (urllib, in a thread). Twilio signs the public URLs (those in the number's
configuration and in the TwiML); the simulator POSTs to the same paths on the server it reaches,
which is often not the public host.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit
from xml.etree import ElementTree

from ..signature import compute_form_signature
from .simulated_call import SimulatedCall, sid

VOICE_PATH = "/twilio/voice"
HTTP_TIMEOUT = 10.0
DIALLED = "+15550009999"


@dataclass(frozen=True, slots=True)
class Twilio:
    """Where the simulator POSTs (`base`, e.g. http://127.0.0.1:8000), the public base URL that
    Twilio would sign (https://voice.example.com; the same as `base` when not given), and the
    auth token to sign with (none: unsigned)."""

    base: str
    public: str
    token: str = ""

    @classmethod
    def for_stream(cls, stream_url: str, public_url: str = "", token: str = "") -> Twilio:
        """The server behind a `ws://` or `wss://` stream URL, signed for `public_url` (its
        `wss://` base, VOICEFLOW_PUBLIC_URL) when given."""
        base = _http(stream_url)
        return cls(base, _http(public_url) if public_url else base, token)


@dataclass(frozen=True, slots=True)
class Connect:
    """What the webhook's TwiML asked for: the stream, its Parameters, the action URL."""

    stream_url: str
    parameters: dict[str, str]
    action: str | None


def call_form(call: SimulatedCall, status: str) -> dict[str, str]:
    """The parameters Twilio POSTs with every request about `call`."""
    form = {
        "AccountSid": sid("AC", 1),
        "ApiVersion": "2010-04-01",
        "CallSid": call.call_sid,
        "CallStatus": status,
        "Direction": "inbound",
        "To": DIALLED,
    }
    if call.caller is not None:
        form["From"] = call.caller
    return form


async def answer(twilio: Twilio, call: SimulatedCall) -> Connect:
    """POST the voice webhook for `call`; the `<Connect><Stream>` of its answer. Anything else
    (an error status, other TwiML) is a ValueError saying what came back."""
    return _connect(await _post(twilio, VOICE_PATH, call_form(call, "ringing")))


async def follow(twilio: Twilio, call: SimulatedCall, redirect: str) -> Connect:
    """POST a `<Redirect>`'s URL as Twilio does (same CallSid, the call in progress); the
    `<Connect><Stream>` of its answer, or a ValueError saying what came back instead."""
    return _connect(await _post(twilio, _path(redirect), call_form(call, "in-progress")))


def stream_url(twilio: Twilio, connect: Connect) -> str:
    """Where the simulator opens the stream `connect` names: its path on the server the
    simulator reaches (`base`), as Twilio opens it on the public host."""
    base, stream = urlsplit(twilio.base), urlsplit(connect.stream_url)
    scheme = {"http": "ws", "https": "wss"}.get(base.scheme, base.scheme)
    return urlunsplit((scheme, base.netloc, stream.path, stream.query, ""))


def _connect(twiml: str) -> Connect:
    root = _parse(twiml)
    connect = root.find("Connect")
    stream = connect.find("Stream") if connect is not None else None
    if connect is None or stream is None or not stream.get("url"):
        raise ValueError(f"the webhook answered no <Connect><Stream url>: {twiml[:200]!r}")
    parameters = {
        p.get("name", ""): p.get("value", "") for p in stream.findall("Parameter") if p.get("name")
    }
    return Connect(stream.get("url", ""), parameters, connect.get("action"))


async def after(twilio: Twilio, call: SimulatedCall, action: str) -> str:
    """POST the `<Connect action>` as Twilio does when the stream has ended; the verb it
    answered, as a line: "Hangup", "Dial +1555...", "Dial sip:...", "Redirect https://..."."""
    root = _parse(await _post(twilio, _path(action), call_form(call, "in-progress")))
    verbs = list(root)
    if not verbs:
        return "(empty: Twilio would end the call)"
    verb = verbs[0]
    if verb.tag == "Dial":
        target = verb.find("Sip")
        to = (target.text if target is not None else verb.text) or ""
        caller_id = verb.get("callerId")
        return f"Dial {to.strip()}" + (f" callerId={caller_id}" if caller_id else "")
    if verb.tag == "Redirect":
        return f"Redirect {(verb.text or '').strip()}"
    return verb.tag


async def _post(twilio: Twilio, path: str, form: dict[str, str]) -> str:
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    if twilio.token:
        signed = compute_form_signature(twilio.token, twilio.public + path, form)
        headers["X-Twilio-Signature"] = signed
    request = urllib.request.Request(
        twilio.base + path, urlencode(form).encode(), headers, method="POST"
    )
    try:
        return await asyncio.to_thread(_read, request)
    except urllib.error.HTTPError as exc:
        raise ValueError(f"POST {twilio.base}{path} answered {exc.code} {exc.reason}") from exc
    except (OSError, TimeoutError) as exc:
        raise ValueError(f"POST {twilio.base}{path} failed: {exc}") from exc


def _read(request: urllib.request.Request) -> str:
    with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT) as response:
        body: bytes = response.read()
    return body.decode()


def _parse(twiml: str) -> ElementTree.Element:
    try:
        root = ElementTree.fromstring(twiml)
    except ElementTree.ParseError as exc:
        raise ValueError(f"not TwiML ({exc}): {twiml[:200]!r}") from exc
    if root.tag != "Response":
        raise ValueError(f"TwiML has no <Response> root: {twiml[:200]!r}")
    return root


def _path(url: str) -> str:
    """The path and query of a URL in TwiML, to POST on the server the simulator reaches."""
    parts = urlsplit(url)
    return urlunsplit(("", "", parts.path, parts.query, ""))


def _http(url: str) -> str:
    """The http(s) base (scheme and host) of a ws(s) URL."""
    parts = urlsplit(url)
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))
