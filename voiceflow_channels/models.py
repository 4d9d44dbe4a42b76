"""`CallRecord`: one row per call, written after each of its legs ends (`records.writer`)."""

from __future__ import annotations

from django.db import models


class CallRecord(models.Model):
    """A call as it happened: who, when, how it ended, its figures (summed over its legs; each
    leg's own, with its timeline, in `legs`), and its words when VOICEFLOW_RECORD_TRANSCRIPTS is
    on. Evidence: the admin shows it read-only."""

    call_sid = models.CharField("CallSid", max_length=64, unique=True)
    tenant = models.CharField(max_length=64, blank=True, db_index=True)
    caller = models.CharField(
        max_length=40, blank=True, help_text="Masked unless VOICEFLOW_RECORD_CALLER_NUMBER is on."
    )
    called = models.CharField(max_length=40, blank=True, help_text="The number dialled.")
    started_at = models.DateTimeField(db_index=True)
    ended_at = models.DateTimeField()
    duration_ms = models.PositiveBigIntegerField(default=0)
    ended = models.CharField("how it ended", max_length=32, db_index=True)
    transfer_to = models.CharField(max_length=200, blank=True)
    turns = models.PositiveIntegerField(default=0)
    barge_ins = models.PositiveIntegerField(default=0)
    figures = models.JSONField(default=dict)
    legs = models.JSONField(default=list)
    transcript = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ("-started_at",)
        verbose_name = "call record"

    def __str__(self) -> str:
        return self.call_sid

    @property
    def reconnects(self) -> int:
        """The times the call moved to a new stream (a redirect after a drain or a crash)."""
        return max(len(self.legs) - 1, 0)

    @property
    def audio_files(self) -> list[str]:
        """The names, in default_storage, of the legs' recordings (VOICEFLOW_RECORD_AUDIO)."""
        return [leg["audio"] for leg in self.legs if leg.get("audio")]
