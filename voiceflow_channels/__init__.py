"""Twilio Media Streams over a Django Channels websocket, served by daphne."""
