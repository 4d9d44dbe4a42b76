"""The model behind the edge: OpenAI Realtime (GA) behind a Twilio stream."""

from __future__ import annotations
