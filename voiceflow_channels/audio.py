"""Play audio to a call, or clear what it plays, from anywhere (a view, a task, another process).

Like `wait`, each message goes through the Channels layer to the call's group. An utterance
travels in parts of at most `AUDIO_CHUNK_BYTES` (1 s of audio), so a long one never makes one
huge layer message; the call starts playing the first part while the rest arrive.
"""

from __future__ import annotations

import uuid

from asgiref.sync import async_to_sync
from channels import DEFAULT_CHANNEL_LAYER

from . import conf
from .layer_messages import AUDIO_CHUNK_BYTES, check_audio, check_label
from .mulaw import BYTES_PER_MS
from .wait import send_to_call


async def aplay(
    call_sid: str, mulaw: bytes, label: str = "speech", alias: str = DEFAULT_CHANNEL_LAYER
) -> None:
    """Queue `mulaw` (8 kHz mu-law, any length; padded to whole 20 ms frames) as one utterance
    on the call's stream(s), after what is already queued. `label` comes back in
    `on_playback(label, played_ms, cleared_ms)`."""
    check_label(label)
    audio = check_audio(mulaw)
    limit = conf.max_queued_audio_ms()
    if not audio or len(audio) > limit * BYTES_PER_MS:
        raise ValueError(
            f"mulaw holds {len(audio) / BYTES_PER_MS / 1000:g} s of audio: it must hold some, "
            f"and at most VOICEFLOW_MAX_QUEUED_AUDIO_MS ({limit} ms)"
        )
    utterance = uuid.uuid4().hex
    parts = range(0, len(audio), AUDIO_CHUNK_BYTES)
    for part, offset in enumerate(parts):
        message = {
            "type": "voiceflow.audio.play",
            "utterance": utterance,
            "label": label,
            "part": part,
            "final": part == len(parts) - 1,
            "audio": audio[offset : offset + AUDIO_CHUNK_BYTES],
        }
        await send_to_call(call_sid, message, alias)


async def aclear(call_sid: str, alias: str = DEFAULT_CHANNEL_LAYER) -> None:
    """Barge-in: the call's stream(s) drop what they play and have queued, at once."""
    await send_to_call(call_sid, {"type": "voiceflow.audio.clear"}, alias)


play = async_to_sync(aplay)
clear = async_to_sync(aclear)
