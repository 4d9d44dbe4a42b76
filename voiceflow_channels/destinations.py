"""Where a call may be transferred: an E.164 number or a `sip:` URI, on the allowlist.

Framework-free. A model can be talked into dialling anything (a premium number, an attacker's
line), so `check_destination` is run in the caller's own process before a transfer is sent,
and again before the `<Dial>` is answered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .twilio_events import mask_phone

SETTING = "VOICEFLOW_TRANSFER_ALLOWLIST"
MAX_DESTINATION_CHARS = 256

# `+`, a country code (never 0) and the rest: 8-15 digits in all.
_E164 = re.compile(r"\+[1-9][0-9]{7,14}", re.ASCII)
# sip:[user@]host[:port][;param=value...], a conservative subset of RFC 3261's: no headers
# (`?`), no spaces, nothing a SIP or XML parser could read as the end of the URI.
_SIP = re.compile(
    r"sip:(?:[A-Za-z0-9_.!~+%-]+@)?"
    r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?"
    r"(?:;[A-Za-z0-9_.!~'()%+-]+(?:=[A-Za-z0-9_.!~'()%+-]*)?)*",
    re.ASCII,
)
# Wildcards: `+4420*` (numbers that start so) and `sip:*@host` (any user at that host).
_E164_PREFIX = re.compile(r"\+[1-9][0-9]{0,13}\*", re.ASCII)


def is_e164(number: object) -> bool:
    """True for `+` and 8-15 digits, the first not 0."""
    return isinstance(number, str) and bool(_E164.fullmatch(number))


def is_destination(to: object) -> bool:
    """True for an E.164 number or a `sip:` URI of sane length (allowlisted or not)."""
    return (
        isinstance(to, str)
        and len(to) <= MAX_DESTINATION_CHARS
        and (is_e164(to) or bool(_SIP.fullmatch(to)))
    )


def check_destination(to: object, allowlist: Iterable[str]) -> str:
    """`to`, when it is an E.164 number or a `sip:` URI that `allowlist` allows; else a
    TypeError (not a str) or a ValueError naming VOICEFLOW_TRANSFER_ALLOWLIST."""
    if not isinstance(to, str):
        raise TypeError(f"transfer destination must be a str, not {type(to).__name__}")
    if not is_destination(to):
        raise ValueError(
            f"transfer destination {masked(to)!r} is neither an E.164 number (+ and 8-15 digits, "
            f"e.g. +15551234567) nor a sip: URI; only those can be on {SETTING}"
        )
    if not any(allows(entry, to) for entry in allowlist):
        raise ValueError(
            f"transfer destination {masked(to)!r} is not on {SETTING}: add it there (an exact "
            "destination, or a pattern such as +4420* or sip:*@pbx.example.com) to allow it"
        )
    return to


def allows(entry: str, to: str) -> bool:
    """True when allowlist `entry` allows destination `to`: the same string, or a wildcard
    entry's match (`+4420*`: a longer number with that prefix; `sip:*@host...`: any user)."""
    if entry == to:
        return True
    if _E164_PREFIX.fullmatch(entry):
        return is_e164(to) and to.startswith(entry[:-1]) and len(to) >= len(entry)
    if entry.startswith("sip:*@"):
        user, at, rest = to.removeprefix("sip:").partition("@")
        return to.startswith("sip:") and bool(at and user) and rest == entry.removeprefix("sip:*@")
    return False


def entry_problem(entry: object) -> str | None:
    """What is wrong with allowlist `entry` ("is not ..."), or None: it must be a destination or
    one of the two wildcards, so that a typo is reported at start, not by a refused transfer."""
    if not isinstance(entry, str):
        return f"is a {type(entry).__name__}, not a str"
    if is_destination(entry) or _E164_PREFIX.fullmatch(entry):
        return None
    if entry.startswith("sip:*@") and is_destination("sip:user@" + entry.removeprefix("sip:*@")):
        return None
    return (
        "is not an E.164 number (+15551234567), a sip: URI (sip:desk@pbx.example.com) or a "
        "wildcard of either (+4420*, sip:*@pbx.example.com)"
    )


def masked(to: str) -> str:
    """A destination fit for logs and errors: a number, or a SIP URI's user, masked to its last
    four characters; a SIP host is shown."""
    if to.startswith("sip:") and "@" in to:
        user, _, host = to.removeprefix("sip:").partition("@")
        return f"sip:{mask_phone(user)}@{host[:80]}"
    return mask_phone(to[:MAX_DESTINATION_CHARS])
