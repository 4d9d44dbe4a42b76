"""The app's HTTP endpoints: include them in your project's urls.py. Operations: /healthz,
/readyz, /metrics. Twilio's voice webhook and its `<Connect action>`: /twilio/voice and
/twilio/voice/after."""

from __future__ import annotations

from django.urls import path

from . import views, webhooks

urlpatterns = [
    path("healthz", views.healthz, name="voiceflow-healthz"),
    path("readyz", views.readyz, name="voiceflow-readyz"),
    path("metrics", views.metrics_view, name="voiceflow-metrics"),
    path("twilio/voice", webhooks.voice, name="voiceflow-voice"),
    path("twilio/voice/after", webhooks.after, name="voiceflow-voice-after"),
]
