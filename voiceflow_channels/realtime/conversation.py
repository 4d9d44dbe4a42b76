"""The conversation as the caller lived it, kept so that another model session (on this process
or another) can carry it on: the caller's words, the assistant's words as heard (an utterance cut
by a barge-in keeps only the share the caller heard), tool calls and their outputs. Never audio.

Framework-free, no I/O. Items hold a slot from the moment the model adds them (so the record
keeps the conversation's order even when a transcript completes late) and count once complete;
`saved()` is what goes to the cache, `replay()` what a new session is given.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, fields
from typing import Any, Literal

Kind = Literal["user", "assistant", "function_call", "function_call_output"]
KINDS: tuple[Kind, ...] = ("user", "assistant", "function_call", "function_call_output")
INTERRUPTED = (
    "The call moved to another connection before this tool answered: its result is unknown. "
    "Call it again if it is still needed."
)
# A rough count of text tokens (OpenAI's English averages ~4 characters a token), plus each
# item's framing.
CHARS_PER_TOKEN = 4
TOKENS_PER_ITEM = 8


@dataclass(slots=True)
class Entry:
    """One item: `text` for words (the caller's, or the assistant's as heard), `name` and
    `arguments` for a tool call, `call_id` and `text` (the output) for its output."""

    kind: Kind
    item_id: str
    text: str = ""
    name: str = ""
    arguments: str = ""
    call_id: str = ""
    done: bool = False

    @property
    def tokens(self) -> int:
        size = len(self.text) + len(self.name) + len(self.arguments)
        return size // CHARS_PER_TOKEN + TOKENS_PER_ITEM

    def as_item(self) -> dict[str, Any]:
        """The item of a `conversation.item.create` that puts this entry in a new session."""
        item: dict[str, Any] = {"id": self.item_id}
        if self.kind == "user":
            item |= {"type": "message", "role": "user"}
            item["content"] = [{"type": "input_text", "text": self.text}]
        elif self.kind == "assistant":
            item |= {"type": "message", "role": "assistant"}
            item["content"] = [{"type": "output_text", "text": self.text}]
        elif self.kind == "function_call":
            item |= {"type": "function_call", "call_id": self.call_id, "name": self.name}
            item["arguments"] = self.arguments
        else:
            item |= {"type": "function_call_output", "call_id": self.call_id}
            item["output"] = self.text
        return item


FIELDS = tuple(f.name for f in fields(Entry))  # an entry's, as `saved` writes them


def cut_at_heard(text: str, played_ms: int, cleared_ms: int) -> str:
    """The share of an utterance's transcript the caller heard: its first played/(played+cleared)
    of the text, ended at a word (the cut word is dropped: it was not heard whole)."""
    total = played_ms + cleared_ms
    if total <= 0 or cleared_ms <= 0:
        return text
    keep = len(text) * played_ms // total
    if keep >= len(text):
        return text
    cut = text[:keep]
    if not text[keep].isspace():
        cut = cut.rsplit(None, 1)[0] if " " in cut.strip() else ""
    return cut.rstrip(" ,;:-") + ("…" if cut.strip() else "")


class Conversation:
    """One call's conversation, bounded to `max_items` items (the oldest dropped first, counted
    in `dropped`). Entries come from a saved record (`entries`) or as the model adds them."""

    def __init__(self, max_items: int, entries: list[Entry] | None = None) -> None:
        self.max_items = max_items
        self.dropped = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._heard: dict[str, tuple[int, int]] = {}  # item -> played, cleared ms
        for entry in entries or ():
            self._add(entry)

    def __len__(self) -> int:
        return len(self._entries)

    def added(self, item_id: str, kind: Kind) -> None:
        """The model added an item: it holds its place from now on (a known id is left as is:
        the items a resume replays come back this way too)."""
        if item_id not in self._entries:
            self._add(Entry(kind, item_id))

    def user_said(self, item_id: str, text: str) -> bool:
        """The caller's words, transcribed. True when that completed an entry."""
        return self._complete(item_id, "user", text=text)

    def assistant_said(self, item_id: str, text: str) -> bool:
        """The assistant's whole transcript of an item; it completes once its audio is over
        (`heard`), cut to what was heard. True when that completed an entry."""
        entry = self._entries.get(item_id)
        if entry is None or entry.done:
            return False
        entry.text = text
        return self._settle(item_id)

    def heard(self, item_id: str, played_ms: int, cleared_ms: int) -> bool:
        """The item's audio is over: `played_ms` heard, `cleared_ms` cut. True when that
        completed an entry."""
        entry = self._entries.get(item_id)
        if entry is None or entry.done or entry.kind != "assistant":
            return False
        self._heard[item_id] = (played_ms, cleared_ms)
        return self._settle(item_id)

    def tool_called(self, item_id: str, call_id: str, name: str, arguments: str) -> bool:
        return self._complete(
            item_id, "function_call", call_id=call_id, name=name, arguments=arguments
        )

    def tool_answered(self, item_id: str, call_id: str, output: str) -> bool:
        return self._complete(item_id, "function_call_output", call_id=call_id, text=output)

    def unanswered(self) -> list[Entry]:
        """Tool calls with no output: their process went away while they ran."""
        answered = {e.call_id for e in self._entries.values() if e.kind == "function_call_output"}
        return [
            e
            for e in self._entries.values()
            if e.kind == "function_call" and e.done and e.call_id not in answered
        ]

    def saved(self) -> list[dict[str, Any]]:
        """The complete entries, in the conversation's order, as plain data for the cache (the
        fields read one by one: `asdict`, which deep-copies each, took 6.5 us an entry against
        0.5, twice a turn)."""
        return [{f: getattr(e, f) for f in FIELDS} for e in self._entries.values() if e.done]

    def replay(self, max_tokens: int) -> list[dict[str, Any]]:
        """The items a new session is given: the newest complete entries within `max_tokens`
        (a tool's call and its output kept or dropped together), starting at a message."""
        entries = [e for e in self._entries.values() if e.done and (e.text or e.name)]
        kept: list[Entry] = []
        budget = max_tokens
        for entry in reversed(entries):
            budget -= entry.tokens
            if budget < 0:
                break
            kept.append(entry)
        kept.reverse()
        calls = {e.call_id for e in kept if e.kind == "function_call"}
        kept = [e for e in kept if e.kind != "function_call_output" or e.call_id in calls]
        while kept and kept[0].kind not in ("user", "assistant"):
            kept.pop(0)
        outputs = {e.call_id for e in kept if e.kind == "function_call_output"}
        return [e.as_item() for e in kept if e.kind != "function_call" or e.call_id in outputs]

    @classmethod
    def from_saved(cls, max_items: int, saved: object) -> Conversation:
        """A conversation from what `saved()` gave; ValueError for anything else."""
        if not isinstance(saved, list):
            raise ValueError(f"a saved conversation is a list, not {type(saved).__name__}")
        entries = []
        for value in saved:
            if not (isinstance(value, dict) and value.get("kind") in KINDS):
                raise ValueError(f"not a saved conversation entry: {str(value)[:80]!r}")
            fields = {k: value.get(k, "") for k in ("item_id", "text", "name", "arguments")}
            fields["call_id"] = value.get("call_id", "")
            if not all(isinstance(v, str) for v in fields.values()):
                raise ValueError(f"a saved entry's fields are strings: {str(value)[:80]!r}")
            entries.append(Entry(value["kind"], done=True, **fields))
        return cls(max_items, entries)

    def _complete(self, item_id: str, kind: Kind, **fields: str) -> bool:
        entry = self._entries.get(item_id)
        if entry is None:
            entry = self._add(Entry(kind, item_id))
        if entry.done:
            return False
        for name, value in fields.items():
            setattr(entry, name, value)
        entry.done = True
        return True

    def _settle(self, item_id: str) -> bool:
        entry = self._entries[item_id]
        heard = self._heard.get(item_id)
        if heard is None or not entry.text:
            return False
        entry.text = cut_at_heard(entry.text, *heard)
        entry.done = True
        del self._heard[item_id]
        return True

    def _add(self, entry: Entry) -> Entry:
        self._entries[entry.item_id] = entry
        while len(self._entries) > self.max_items:
            old, _ = self._entries.popitem(last=False)
            self._heard.pop(old, None)
            self.dropped += 1
        return entry
