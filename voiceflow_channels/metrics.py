"""Prometheus metrics of the process, `voiceflow_*`: counted per call and per event, never per
frame (a call's frames and drops are added once, when it ends).

With several server processes, set PROMETHEUS_MULTIPROC_DIR (an empty directory shared by them,
emptied before they start) in each process's environment: `render()` then adds every process's
figures up (prometheus-client's multiprocess mode), and active calls count live processes only.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from .call_state import CallState
from .lag import BOUNDS_MS

CALLS_ACTIVE = Gauge("voiceflow_calls_active", "Streams open now.", multiprocess_mode="livesum")
CALLS_ENDED = Counter(
    "voiceflow_calls_ended", "Streams ended, by how: stop, disconnect, timeout, drained.", ["how"]
)
MEDIA_FRAMES = Counter("voiceflow_media_frames", "Inbound media frames handled.")
DROPS = Counter("voiceflow_frames_dropped", "Inbound frames dropped, by reason.", ["reason"])
REFUSED = Counter(
    "voiceflow_upgrades_refused",
    "Websocket upgrades refused: signature, draining, at_capacity.",
    ["reason"],
)
LAYER_FAILURES = Counter(
    "voiceflow_layer_failures",
    "Channel layer failures: join, leave, receive, bad_message, lost_audio (parts).",
    ["kind"],
)
WAITS = Counter("voiceflow_waits", "Waits started.")
CHIMES = Counter("voiceflow_chimes", "Chimes started.")
AUDIO_PLAYED_MS = Counter(
    "voiceflow_audio_played_ms", "Outbound audio Twilio confirmed played (mark echoes), ms."
)
AUDIO_CLEARED_MS = Counter("voiceflow_audio_cleared_ms", "Outbound audio queued then cleared, ms.")
AUDIO_REFUSED = Counter("voiceflow_audio_refused", "Plays refused past the queue bound.")
UTTERANCES_TIMED_OUT = Counter(
    "voiceflow_utterances_timed_out",
    "Streamed utterances closed because no part came for VOICEFLOW_PART_TIMEOUT_MS.",
)
HOOK_ERRORS = Counter("voiceflow_hook_errors", "Consumer hooks that raised.")
INTERNAL_ERRORS = Counter(
    "voiceflow_internal_errors",
    "Exceptions caught so that a call goes on, by where: layer_handler (a bug, never a bad "
    "message: those are layer failures), tenant_resolver (VOICEFLOW_TENANT_RESOLVER raised), "
    "prepare, on_transcript, realtime_handler, and a task's name for a task that raised.",
    ["where"],
)
TENANT_RESOLVER_TIMEOUTS = Counter(
    "voiceflow_tenant_resolver_timeouts",
    "Voice webhooks whose VOICEFLOW_TENANT_RESOLVER took more than "
    "VOICEFLOW_TENANT_RESOLVER_TIMEOUT_S: answered without a tenant.",
)
TIMEOUTS = Counter("voiceflow_timeouts", "Streams closed by a timeout: start, idle.", ["kind"])
MODEL_FAILURES = Counter(
    "voiceflow_model_failures",
    "Model sessions that failed, by kind: connect, refused, session_cap, closed, "
    "session_error, rate_limit, response_failed (two responses in a row), bad_message (not "
    "JSON, or not an event), internal (a bug of ours ended the session). A refused key and a "
    "rate limit fall back at once; the rest reopen the session (VOICEFLOW_MODEL_RETRIES).",
    ["kind"],
)
MODEL_ERRORS = Counter(
    "voiceflow_model_errors",
    "Error events from the model that the call survived, by code (the barge-in race's "
    "conversation_already_has_active_response and response_cancel_not_active among them).",
    ["code"],
)
RESPONSES_FAILED = Counter(
    "voiceflow_model_responses_failed",
    "Responses the model ended with status failed, by status_details.error code "
    "(rate_limit_exceeded, server_error...): asked again once, then a model failure.",
    ["code"],
)
RESPONSES_INCOMPLETE = Counter(
    "voiceflow_model_responses_incomplete",
    "Responses the model ended with status incomplete, by reason (content_filter, "
    "max_output_tokens): the call goes on.",
    ["reason"],
)
MODEL_EVENTS_UNKNOWN = Counter(
    "voiceflow_model_events_unknown",
    "Events from the model of a type the OpenAI SDK does not know (logged at debug), ignored.",
)
CONVERSATIONS_RESUMED = Counter(
    "voiceflow_conversations_resumed",
    "Conversations given to a new model session with their history, by how: stream (a new "
    "stream for a call that had one: a redirect after a drain, a crash or a lost socket) or "
    "model (the model session ended mid-call and was reopened).",
    ["how"],
)
RESUME_LATENCY = Histogram(
    "voiceflow_resume_ms",
    "From the stream's start (how=stream) or the model session's end (how=model) to the new "
    "session given the whole history, ms.",
    ["how"],
    buckets=(50, 100, 200, 300, 500, 1000, 2000, 5000, 10000),
)
CONVERSATION_FAILURES = Counter(
    "voiceflow_conversation_failures",
    "Reads (op=load) and writes (op=save) of a conversation that the cache failed.",
    ["op"],
)
CONVERSATION_ITEMS_DROPPED = Counter(
    "voiceflow_conversation_items_dropped",
    "Oldest conversation items dropped past VOICEFLOW_CONVERSATION_MAX_ITEMS.",
)
CALLS_HANDED_OVER = Counter(
    "voiceflow_calls_handed_over",
    "Assistant calls a drain closed at a quiet moment, their conversation kept, for Twilio to "
    "carry on through another process.",
)
MODEL_TURNS = Counter("voiceflow_model_turns", "Model responses that spoke to a caller.")
BARGE_INS = Counter("voiceflow_barge_ins", "Callers who spoke over the model's audio.")
FALSE_BARGE_INS = Counter(
    "voiceflow_false_barge_ins",
    "Barge-ins that were blips: speech shorter than VOICEFLOW_MIN_BARGE_IN_MS, with no words.",
)
LATE_AUDIO = Counter(
    "voiceflow_model_late_audio", "Audio deltas of interrupted responses, dropped."
)
DTMF_TO_MODEL = Counter(
    "voiceflow_dtmf_to_model",
    "Key entries (keys gathered until # or VOICEFLOW_DTMF_GAP_MS) given to the model as words.",
)
IDLE_REPROMPTS = Counter(
    "voiceflow_idle_reprompts",
    "Check-ins the model was asked for, the caller silent VOICEFLOW_IDLE_REPROMPT_MS after the "
    "assistant's turn was heard.",
)
ASSISTANT_ENDINGS = Counter(
    "voiceflow_assistant_endings",
    "Calls the assistant hung up on its own, by why: idle (a silent caller, after "
    "VOICEFLOW_IDLE_REPROMPTS check-ins and a goodbye), max_call (VOICEFLOW_MAX_CALL_SECONDS, "
    "after the goodbye), max_call_bound (the goodbye was not whole within 30 s of the "
    "wrap-up: cut, and hung up).",
    ["why"],
)
TOOLS_RUN = Counter(
    "voiceflow_tools", "Tools the model called, by outcome: ok, failed.", ["outcome"]
)
TOOL_THREADS_BUSY = Gauge(
    "voiceflow_tool_threads_busy",
    "Threads running a sync tool now, those past VOICEFLOW_TOOL_TIMEOUT_S included (Python "
    "cannot stop them); at most VOICEFLOW_TOOL_THREADS a process.",
    multiprocess_mode="livesum",
)
RESPONSE_LATENCY = Histogram(
    "voiceflow_model_response_ms",
    "From the end of the caller's turn (speech_stopped) to the answer's first audio, ms.",
    buckets=(100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000),
)
TOOL_DURATION = Histogram(
    "voiceflow_tool_ms",
    "How long tools ran, ms.",
    buckets=(10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 30000),
)
WEBHOOKS_REFUSED = Counter(
    "voiceflow_webhooks_refused",
    "Voice webhook requests refused: method (405), malformed (400), signature (403), "
    "unavailable (503: the flag is off or VOICEFLOW_PUBLIC_URL unset).",
    ["reason"],
)
CALLS_ANSWERED = Counter(
    "voiceflow_calls_answered", "Calls the voice webhook connected to a stream (reconnects too)."
)
CALL_ENDS = Counter(
    "voiceflow_call_ends",
    "What the voice webhook's action answered: hangup, transfer (as decided), reconnect "
    "(no decision: a new stream), reconnects_spent (no decision, none left: hangup), "
    "call_over (the caller had hung up).",
    ["how"],
)
CALL_CONTROL_FAILURES = Counter(
    "voiceflow_call_control_failures",
    "Call-control failures: cache (VOICEFLOW_CALL_CONTROL_CACHE failed), bad_instruction (a "
    "cached end that is not ours, or a transfer no longer allowed), transfer_refused (a "
    "transfer from the layer to a destination this process does not allow).",
    ["kind"],
)
CALL_LAG_P99 = Histogram(
    "voiceflow_call_inbound_lag_p99_ms",
    "Calls by the p99 of their inbound lag (media.timestamp against arrival), ms.",
    buckets=BOUNDS_MS,
)


CALL_RECORDS_WRITTEN = Counter(
    "voiceflow_call_records_written", "Legs of calls written to their call record (the DB)."
)
CALL_RECORDS_FAILED = Counter(
    "voiceflow_call_records_failed",
    "Legs of calls whose record could not be written (the DB down or slow); the call was not.",
)


def publish_call(call: CallState, how: str) -> None:
    """A call's figures into the process metrics, once, at its end."""
    CALLS_ACTIVE.dec()
    CALLS_ENDED.labels(how).inc()
    MEDIA_FRAMES.inc(call.frames)
    for reason, count in call.drops.items():
        DROPS.labels(reason).inc(count)
    WAITS.inc(call.wait.waits_started)
    CHIMES.inc(call.wait.chimes_due)
    AUDIO_PLAYED_MS.inc(call.playback.played_ms)
    AUDIO_CLEARED_MS.inc(call.playback.cleared_ms)
    AUDIO_REFUSED.inc(call.playback.refused)
    UTTERANCES_TIMED_OUT.inc(call.timed_out)
    HOOK_ERRORS.inc(call.hook_errors)
    p99 = call.lag.quantile(0.99)
    if p99 is not None:
        CALL_LAG_P99.observe(p99)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type: this process's, or all processes' in
    multiprocess mode."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        forget_dead_processes(directory)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry), CONTENT_TYPE_LATEST


def forget_dead_processes(directory: str) -> None:
    """Drop the live gauges of processes that are gone (killed, or exited without saying so),
    so `voiceflow_calls_active` counts live processes only; the processes share one host."""
    for path in Path(directory).glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(pid, directory)
        except PermissionError:
            pass  # alive, another user's


def process_exiting() -> None:
    """This process is about to exit: its live gauges go."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        multiprocess.mark_process_dead(os.getpid(), directory)
