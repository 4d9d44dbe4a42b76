"""Test tools for the app, as channels.testing is for Channels: Twilio-shaped calls, Twilio's side
of a call's outbound audio, and the call simulator behind `voiceflow_callsim`."""

from __future__ import annotations

from . import callsim
from .results import CallResult, Progress, SimResult
from .simulated_call import SimulatedCall
from .twilio_playout import TwilioPlayout

__all__ = ["CallResult", "Progress", "SimResult", "SimulatedCall", "TwilioPlayout", "callsim"]
