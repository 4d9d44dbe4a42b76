"""The app's configuration: its system checks register when Django is ready."""

from __future__ import annotations

from django.apps import AppConfig


class VoiceflowChannelsConfig(AppConfig):
    name = "voiceflow_channels"
    default_auto_field = "django.db.models.BigAutoField"  # the migrations', whatever the project's
    verbose_name = "Voiceflow Channels (Twilio Media Streams)"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
