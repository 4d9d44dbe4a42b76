"""Test tools for the app, as channels.testing is for Channels: Twilio-shaped calls, Twilio's side
of a call's outbound audio, a call port for testing an assistant alone (`FakeCall`), and the
call simulator behind `voiceflow_callsim`."""

from __future__ import annotations

from . import callsim
from .fake_call import FakeCall
from .results import CallResult, Progress, SimResult
from .simulated_call import SimulatedCall
from .twilio_playout import TwilioPlayout

__all__ = [
    "CallResult",
    "FakeCall",
    "Progress",
    "SimResult",
    "SimulatedCall",
    "TwilioPlayout",
    "callsim",
]
