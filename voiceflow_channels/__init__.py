"""Twilio Media Streams over a Django Channels websocket, served by daphne or uvicorn."""

from __future__ import annotations
