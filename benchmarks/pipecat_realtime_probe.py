"""Why pipecat's OpenAI Realtime pipeline is not in the bridge benchmark: what the fake Realtime
server hears from it.

    python -m benchmarks.pipecat_realtime_probe

pipecat's `OpenAIRealtimeLLMService` (GA events) with an `LLMContextAggregatorPair`, as pipecat's
realtime examples build it, pointed at the fake through `base_url`, in a pipeline at 8 kHz (what
its `TwilioFrameSerializer` hands on: Twilio's mu-law as 8 kHz PCM). It is given the audio of a
turn, a second of silence, a second of a loud voice and two of silence, and asked for a first
response; then the fake says what it heard. Twice: with pipecat's default session (audio/pcm)
and with audio/pcmu declared both ways, as a Twilio bridge would want.
"""

from __future__ import annotations

import asyncio
import math
import sys

from loguru import logger
from pipecat.frames.frames import EndFrame, InputAudioRawFrame, LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.services.openai.realtime import events
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.workers.runner import WorkerRunner

from voiceflow_channels.testing.fake_realtime import FakeRealtime

RATE = 8000
FRAME = 160  # samples in 20 ms
FRAME_SECONDS = 0.02
# A loud 200 Hz tone, 16-bit little-endian: far over the fake's VAD threshold once mu-law.
VOICE = b"".join(
    round(8000 * math.sin(2 * math.pi * 200 * i / RATE)).to_bytes(2, "little", signed=True)
    for i in range(FRAME)
)
SILENCE = bytes(2 * FRAME)
TURN = [SILENCE] * 50 + [VOICE] * 50 + [SILENCE] * 100

logger.remove()
logger.add(sys.stderr, level="WARNING")


def session(pcmu: bool) -> events.SessionProperties:
    fmt = events.PCMUAudioFormat() if pcmu else None
    return events.SessionProperties(
        instructions="Answer briefly.",
        audio=events.AudioConfiguration(
            input=events.AudioInput(format=fmt, turn_detection=events.TurnDetection()),
            output=events.AudioOutput(format=fmt),
        ),
    )


async def probe(pcmu: bool) -> str:
    """Play the turn through pipecat's service to the fake; what the fake heard."""
    async with FakeRealtime() as fake:
        llm = OpenAIRealtimeLLMService(
            api_key="sk-probe",
            base_url=f"ws://{fake.host}:{fake.port}/v1/realtime",
            settings=OpenAIRealtimeLLMService.Settings(session_properties=session(pcmu)),
        )
        context = LLMContext([{"role": "user", "content": "Say hello."}])
        aggregators = LLMContextAggregatorPair(context)
        worker = PipelineWorker(
            Pipeline([aggregators.user(), llm, aggregators.assistant()]),
            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=RATE),
        )
        runner = WorkerRunner(handle_sigint=False)
        await runner.add_workers(worker)
        running = asyncio.create_task(runner.run())
        await fake.wait_connections(1)
        await worker.queue_frames([LLMRunFrame()])
        for audio in TURN:
            frame = InputAudioRawFrame(audio=audio, sample_rate=RATE, num_channels=1)
            await worker.queue_frames([frame])
            await asyncio.sleep(FRAME_SECONDS)
        await asyncio.sleep(1)
        await worker.queue_frames([EndFrame()])
        await asyncio.wait_for(running, 10)
        [connection] = fake.connections
        sent_ms = len(TURN) * FRAME_SECONDS * 1000
        return "\n".join(
            [
                f"the session's input format: {connection.session['audio']['input']['format']}",
                f"audio given: {sent_ms:.0f} ms at 8 kHz; appended: {connection.appended_bytes:,} "
                f"bytes (the fake, 8 bytes a ms of mu-law: {connection.appended_ms:,.0f} ms)",
                f"speech_started at (ms of input): {connection.speech_started_ms}; "
                f"speech_stopped at: {connection.speech_stopped_ms}",
                f"responses: {len(connection.responses)} (response.create from pipecat: "
                f"{connection.response_creates}); truncates: {len(connection.truncates)}; "
                f"errors: {[e['code'] for e in connection.errors_sent]}",
            ]
        )


def main() -> int:
    for pcmu, title in ((False, "pipecat's default session"), (True, "audio/pcmu declared")):
        print(f"== {title}\n{asyncio.run(probe(pcmu))}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
