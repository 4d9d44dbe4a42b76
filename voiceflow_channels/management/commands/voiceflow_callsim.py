"""`manage.py voiceflow_callsim`: the call simulator (voiceflow_channels.testing) from the shell."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from voiceflow_channels import conf
from voiceflow_channels.chime import MAX_SOUND_SECONDS, load_wav
from voiceflow_channels.mulaw import SAMPLE_RATE
from voiceflow_channels.startup import freeze_startup_objects
from voiceflow_channels.testing import callsim
from voiceflow_channels.testing.script import (
    DEFAULT_TALK_SECONDS,
    DEFAULT_WAIT_KEY,
    parse_press,
    parse_talk,
)
from voiceflow_channels.testing.webhook import Twilio

DEFAULT_URL = "ws://127.0.0.1:8000/twilio/stream"


class Command(BaseCommand):
    help = (
        "Play simulated Twilio Media Streams calls at a websocket URL (no phone needed) and "
        "report what was sent and how long it took. Each call plays the server's audio as Twilio "
        "does (echoing marks, honouring clears) and can press keys and talk at given times."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=DEFAULT_URL, help=f"default: {DEFAULT_URL}")
        parser.add_argument("--calls", type=int, default=1, help="concurrent calls (default 1)")
        parser.add_argument(
            "--seconds", type=float, default=5.0, help="audio per call, 50 frames/s (default 5)"
        )
        pace = parser.add_mutually_exclusive_group()
        pace.add_argument(
            "--realtime",
            dest="realtime",
            action="store_true",
            default=True,
            help="50 media frames/s per call, as Twilio sends (the default)",
        )
        pace.add_argument(
            "--flat-out",
            dest="realtime",
            action="store_false",
            help="send as fast as the server takes the frames",
        )
        parser.add_argument("--tenant", default="t1", help="customParameters tenant_id")
        parser.add_argument(
            "--first",
            type=int,
            default=1,
            help="number of the first call (callSid CA<n>); offset it to run several at once",
        )
        parser.add_argument(
            "--close-timeout",
            type=float,
            default=120.0,
            help="seconds to wait for the server to close a call after its stop (default 120)",
        )
        parser.add_argument(
            "--press",
            dest="presses",
            action="append",
            default=[],
            metavar="KEY@SECONDS",
            help="every call presses KEY (0-9 * # A-D) at SECONDS into the call; repeatable, "
            "e.g. --press 1@0.5 --press '#@4'",
        )
        parser.add_argument(
            "--wait-key",
            default=DEFAULT_WAIT_KEY,
            help="the key whose answer is timed as the chime (default "
            f"{DEFAULT_WAIT_KEY}); any other key's answer is timed as a clear",
        )
        parser.add_argument(
            "--talk",
            dest="talks",
            action="append",
            default=[],
            metavar="SECONDS[:DURATION]",
            help="every call talks from SECONDS into the call for DURATION seconds (default "
            f"{DEFAULT_TALK_SECONDS:g}, or the --talk-file's length): a voice-like signal instead "
            "of silence, for a server to hear as speech; repeatable, the windows within the call "
            "and not overlapping, e.g. --talk 2 --talk 6:3",
        )
        parser.add_argument(
            "--talk-file",
            type=Path,
            metavar="WAV",
            help="talk with this recording instead (8000 Hz mono mu-law or 16-bit PCM, at most "
            f"{MAX_SOUND_SECONDS} s): each --talk window plays it from its start, over again if "
            "the window is longer, cut at the window's end",
        )
        parser.add_argument(
            "--silent",
            action="store_true",
            help="every caller keeps silent: silence only, none of the keypresses a call "
            "otherwise makes every 2.5 s (for a server's idle path); not with --press or --talk",
        )
        parser.add_argument(
            "--answer",
            action="store_true",
            help="play Twilio's HTTP side too: POST the voice webhook (/twilio/voice on --url's "
            "host, signed with TWILIO_AUTH_TOKEN over VOICEFLOW_PUBLIC_URL when set) before each "
            "stream, and once it closes POST its <Connect action> and report what it answered; a "
            "<Redirect> is followed as Twilio follows it, to a new stream that plays the rest of "
            "the call (one line per stream, one recording across them)",
        )
        parser.add_argument(
            "--record",
            type=Path,
            metavar="DIR",
            help="write what each caller heard to DIR/<callSid>.wav (DIR is created)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["first"] < 0 or options["close_timeout"] <= 0:
            raise CommandError("--first must be >= 0 and --close-timeout > 0")
        if options["talk_file"] is not None and not options["talks"]:
            raise CommandError(
                "--talk-file needs --talk SECONDS[:DURATION] to say when each call talks"
            )
        # Every argument is checked before anything plays; an error from inside the run is a
        # bug, and keeps its traceback.
        try:
            presses = tuple(parse_press(press) for press in options["presses"])
            talk_audio = None
            talk_seconds = DEFAULT_TALK_SECONDS
            if options["talk_file"] is not None:
                talk_audio = load_wav(options["talk_file"], "--talk-file")
                talk_seconds = len(talk_audio) / SAMPLE_RATE
            talk = tuple(parse_talk(window, talk_seconds) for window in options["talks"])
            callsim.check(
                options["url"],
                options["calls"],
                options["seconds"],
                presses=presses,
                wait_key=options["wait_key"],
                talk=talk,
                silent=options["silent"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if options["record"] is not None:
            try:
                options["record"].mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise CommandError(f"cannot record to {options['record']}: {exc}") from exc
        # This process plays Twilio: a full collection over Django's objects would hold every
        # call's frames back, and the server would count them late.
        freeze_startup_objects()
        result = asyncio.run(
            callsim.run(
                options["url"],
                options["calls"],
                options["seconds"],
                options["realtime"],
                options["tenant"] or None,
                first=options["first"],
                close_timeout=options["close_timeout"],
                on_progress=lambda p: self.stderr.write(f"callsim {p.line()}"),
                presses=presses,
                wait_key=options["wait_key"],
                record=options["record"],
                talk=talk,
                talk_audio=talk_audio,
                silent=options["silent"],
                twilio=(
                    Twilio.for_stream(options["url"], conf.public_url(), conf.twilio_auth_token())
                    if options["answer"]
                    else None
                ),
            )
        )
        for call in result.calls:
            if call.heard or call.pressed or call.then:
                self.stdout.write(call.line())
        if talk:
            voice = options["talk_file"] or "the synthetic voice"
            windows = ", ".join(f"{start:g}-{start + length:g} s" for start, length in sorted(talk))
            self.stdout.write(f"each call talked ({voice}) at {windows}")
        mode = "realtime" if options["realtime"] else "flat-out"
        # A server that falls behind shows as frames held back, not as frames queued here.
        held_back = (
            f"; {result.held_back} times a call's due frames waited for the server to read"
            if result.held_back
            else ""
        )
        self.stdout.write(
            f"{len(result.calls)} calls ({mode}) to {options['url']}: {result.connected} connected "
            f"in {result.connect_seconds:.2f}s; {result.media_frames} media frames "
            f"({result.messages} messages) sent and closed in {result.seconds:.2f}s, "
            f"{result.frames_per_second:,.0f} media frames/s; the simulator used "
            f"{result.cpu_seconds:.2f}s of CPU, {result.cpu_ms_per_call_second:.2f} ms per "
            f"call-second{held_back}"
        )
        if options["record"] is not None:
            recorded = sum(call.recording is not None for call in result.calls)
            self.stdout.write(
                f"what each caller heard: {recorded} WAV files, "
                f"{options['record'].resolve()}/<callSid>.wav"
            )
        failed = result.failed
        for call in failed[:10]:
            self.stderr.write(f"call {call.n} {call.call_sid}: {call.error}")
        if failed:
            raise CommandError(f"{len(failed)} of {len(result.calls)} calls failed")
        if options["answer"]:
            self.stdout.write(self.style.SUCCESS("every call was answered, streamed and ended"))
        else:
            self.stdout.write(
                self.style.SUCCESS("every call was closed by the server after its stop")
            )
