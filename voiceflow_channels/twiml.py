"""The TwiML documents the voice webhooks answer, built as XML trees so every value is escaped.

Framework-free. Each function returns a whole document, byte for byte what the `twilio`
package's `VoiceResponse` renders for it (tests/test_twiml.py compares them).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping

DECLARATION = '<?xml version="1.0" encoding="UTF-8"?>'
# What XML 1.0 cannot carry at all, escaped or not: most control characters, lone surrogates,
# U+FFFE and U+FFFF. ElementTree would write them as they are, and Twilio would refuse the
# document: refused here instead, with the value's name.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def connect_stream(stream_url: str, action_url: str, parameters: Mapping[str, str]) -> str:
    """`<Connect action>` with a bidirectional `<Stream>`: each parameter arrives in the
    stream's `start.customParameters`; Twilio requests `action_url` when the stream ends."""
    response = ET.Element("Response")
    connect = ET.SubElement(response, "Connect", action=_text("action_url", action_url))
    stream = ET.SubElement(connect, "Stream", url=_text("stream_url", stream_url))
    for name, value in parameters.items():
        ET.SubElement(
            stream,
            "Parameter",
            # Attributes in the order VoiceResponse writes them: sorted.
            name=_text("parameter name", name),
            value=_text(f"parameter {name!r}", value),
        )
    return _document(response)


def hangup() -> str:
    """End the call."""
    response = ET.Element("Response")
    ET.SubElement(response, "Hangup")
    return _document(response)


def dial(to: str, caller_id: str | None = None) -> str:
    """Connect the caller onward: a phone number, or `<Sip>` for a `sip:` URI; `caller_id` is
    the number the callee sees (Twilio's default when None)."""
    response = ET.Element("Response")
    attributes = {} if caller_id is None else {"callerId": _text("caller_id", caller_id)}
    element = ET.SubElement(response, "Dial", attributes)
    if to.startswith("sip:"):
        ET.SubElement(element, "Sip").text = _text("to", to)
    else:
        element.text = _text("to", to)
    return _document(response)


def redirect(url: str) -> str:
    """Fetch the call's next TwiML from `url` (a POST)."""
    response = ET.Element("Response")
    ET.SubElement(response, "Redirect").text = _text("url", url)
    return _document(response)


def _text(what: str, value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"TwiML {what} must be a str, not {type(value).__name__}")
    if _NOT_XML.search(value):
        raise ValueError(f"TwiML {what} holds a character XML cannot carry: {value!r}")
    return value


def _document(response: ET.Element) -> str:
    return DECLARATION + ET.tostring(response, encoding="unicode")
