"""`FakeCall`: a call port (`voiceflow_channels.call_port.CallPort`) with no websocket behind
it, for testing an assistant on its own. It keeps what the assistant asked of the call, and
says the caller heard everything sent unless the test says otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from ..call_port import CallInfo
from ..records.timeline import Timeline


@dataclass
class FakeCall:
    """What the assistant did to the call: `played` (utterance key -> audio, in order),
    `ended` (keys whose utterance was closed), `clears`, `waits` (reasons, in order, with None
    for each end), `hung_up`, `transferred_to`. `heard` overrides `heard_ms` per key; a
    transfer to a destination in `refuse` raises ValueError, as an allowlist would;
    `await until(predicate)` waits for what the assistant does next."""

    info: CallInfo = field(default_factory=lambda: CallInfo("CAfake", "MZfake"))
    debug: bool = False
    heard: dict[str, int] = field(default_factory=dict)
    refuse: frozenset[str] = frozenset()
    played: dict[str, bytearray] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    clears: int = 0
    waits: list[str | None] = field(default_factory=list)
    hung_up: bool = False
    transferred_to: str | None = None
    late: int = 0
    timeline: Timeline = field(default_factory=Timeline)
    _keys: int = 0
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def until(self, predicate: Callable[[], bool], timeout_s: float = 10.0) -> None:
        """Wait, at most `timeout_s`, until `predicate()` holds after something the assistant
        did to the call."""
        async with asyncio.timeout(timeout_s), self._changed:
            await self._changed.wait_for(predicate)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @property
    def waiting_for(self) -> str | None:
        return self.waits[-1] if self.waits else None

    @property
    def playing(self) -> bool:
        return any(key not in self.ended for key in self.played)

    async def play(
        self, mulaw: bytes, label: str = "speech", *, key: str | None = None, final: bool = True
    ) -> None:
        if key is None:
            self._keys += 1
            key = f"{label}-{self._keys}"
        self.played[key] = bytearray(mulaw)
        self.labels[key] = label
        if final:
            self.ended.append(key)
        await self._notify()

    async def play_more(self, key: str, mulaw: bytes, *, final: bool = False) -> None:
        if key in self.played and key not in self.ended:
            self.played[key] += mulaw
            if final:
                self.ended.append(key)
        else:
            self.late += 1
        await self._notify()

    async def clear(self) -> None:
        self.clears += 1
        self.ended.extend(key for key in self.played if key not in self.ended)
        await self._notify()

    def start_wait(self, reason: str) -> None:
        self.waits.append(reason)

    def end_wait(self) -> None:
        if self.waiting_for is not None:
            self.waits.append(None)

    async def hangup(self) -> None:
        self.hung_up = True
        await self._notify()

    async def transfer(self, to: str) -> None:
        if to in self.refuse:
            raise ValueError(f"{to} is not on the allowlist")
        self.transferred_to = to
        await self._notify()

    def heard_ms(self, key: str) -> int:
        if key in self.heard:
            return self.heard[key]
        return len(self.played.get(key, b"")) // 8

    def late_audio(self) -> None:
        self.late += 1
