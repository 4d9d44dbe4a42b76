"""Peer (p): pipecat's Twilio edge, input -> a frame counter -> output, built as pipecat's Twilio
examples build it.

python -m benchmarks.pipecat_peer -b 127.0.0.1 -p PORT serves it under uvicorn with the same
settings as ours (`voiceflow_channels.server --server uvicorn`). Per call: pipecat's
`parse_telephony_websocket` reads `connected` and `start`, a FastAPIWebsocketTransport with
TwilioFrameSerializer carries the rest, and a PipelineWorker at 8 kHz (Twilio's rate: nothing is
resampled) runs it with pipecat's defaults. One `pipecat call ended (stop) callSid=... frames=N`
line per call on stderr, N the InputAudioRawFrames that reached the counter.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.frames.frames import (
    ControlFrame,
    EndFrame,
    EndWorkerFrame,
    Frame,
    InputAudioRawFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.runner.utils import parse_telephony_websocket
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

from voiceflow_channels.server import serve

TWILIO_RATE = 8000

# pipecat logs at DEBUG by default, about 20 lines per call; the other servers log at INFO.
logger.remove()
logger.add(sys.stderr, level="INFO")

app = FastAPI()


@dataclass
class TwilioStopFrame(ControlFrame):
    """Twilio's `stop`, after `media_frames` frames of the caller's audio."""

    media_frames: int


class TwilioStopSerializer(TwilioFrameSerializer):
    """Twilio's serializer, plus the `stop` it ignores (Twilio hangs up right after it), which it
    hands on with the number of audio frames it made."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.media_frames = 0

    async def deserialize(self, data: str | bytes) -> Frame | None:
        frame = await super().deserialize(data)
        if isinstance(frame, InputAudioRawFrame):
            self.media_frames += 1
        elif frame is None and _event(data) == "stop":
            return TwilioStopFrame(self.media_frames)
        return frame


def _event(data: str | bytes) -> str | None:
    try:
        return json.loads(data).get("event")
    except (ValueError, AttributeError):
        return None


class FrameCounter(FrameProcessor):
    """Counts the call's InputAudioRawFrames, passing every frame on; after the stop, once every
    frame made before it has arrived, ends the pipeline gracefully, and reports at its end.

    Waiting matters: the stop comes by the input transport's receive task, the audio by its audio
    task, and the graceful end (EndFrame) cancels the audio task with whatever is still queued in
    it, so ending at the stop would drop the frames a busy pipeline has not reached yet."""

    def __init__(self, call_sid: str) -> None:
        super().__init__()
        self.call_sid = call_sid
        self.frames = 0
        self.stopped_after: int | None = None
        self.ending = False

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, InputAudioRawFrame):
            self.frames += 1
        elif isinstance(frame, TwilioStopFrame):
            self.stopped_after = frame.media_frames
        elif isinstance(frame, EndFrame):
            print(
                f"pipecat call ended (stop) callSid={self.call_sid} frames={self.frames}",
                file=sys.stderr,
            )
        await self.push_frame(frame, direction)
        if not self.ending and self.stopped_after is not None and self.frames >= self.stopped_after:
            self.ending = True
            await self.push_frame(EndWorkerFrame(reason="twilio stop"), FrameDirection.UPSTREAM)


@app.websocket("/twilio/stream")
async def media_stream(websocket: WebSocket) -> None:
    """One call: its pipeline runs until the counter ends it after the stop, or the caller goes."""
    await websocket.accept()
    _, call_data = await parse_telephony_websocket(websocket)
    call_sid = call_data.call_id or "-"
    serializer = TwilioStopSerializer(
        stream_sid=call_data.stream_id,
        call_sid=call_sid,
        # Auto hang-up ends the call through Twilio's REST API, with the account's credentials.
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket,
        FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            serializer=serializer,
        ),
    )
    pipeline = Pipeline([transport.input(), FrameCounter(call_sid), transport.output()])
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=TWILIO_RATE, audio_out_sample_rate=TWILIO_RATE),
    )

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(transport: FastAPIWebsocketTransport, ws: WebSocket) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


if __name__ == "__main__":
    serve("benchmarks.pipecat_peer:app", ["--server", "uvicorn", *sys.argv[1:]])
