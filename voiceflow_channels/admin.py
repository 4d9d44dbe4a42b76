"""The call records in Django's admin: searchable, filtered, read-only (records are evidence),
each change page showing the call's figures, its picture (records/picture.py: inline SVG drawn
here, no script), its words and its audio when they were kept."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin
from django.core.files.storage import default_storage
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from .models import CallRecord
from .records.picture import draw
from .records.timeline import Event


@admin.register(CallRecord)
class CallRecordAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    list_display = ("started_at", "caller", "tenant", "duration", "turns", "barge_ins", "ended")
    list_filter = ("tenant", "ended", "started_at")
    search_fields = ("call_sid", "caller", "called")
    date_hierarchy = "started_at"
    fields = (
        "call_sid",
        "tenant",
        "caller",
        "called",
        "started_at",
        "ended_at",
        "duration",
        "ended",
        "transfer_to",
        "reconnects",
        "picture",
        "figures_table",
        "words",
        "audio",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, record: CallRecord) -> str:
        return f"{record.duration_ms / 1000:.1f} s"

    @admin.display(description="timeline")
    def picture(self, record: CallRecord) -> SafeString:
        legs = []
        for leg in record.legs:
            offset = _offset_ms(record, leg)
            events = [e for e in map(Event.from_saved, leg.get("events", ())) if e is not None]
            legs.append((offset, events))
        return mark_safe(draw(legs, record.duration_ms))  # draw() escapes every label

    @admin.display(description="figures")
    def figures_table(self, record: CallRecord) -> SafeString:
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>", record.figures.items())
        return format_html('<table class="voiceflow-figures">{}</table>', rows)

    @admin.display(description="transcript")
    def words(self, record: CallRecord) -> SafeString | str:
        if not record.transcript:
            return "not kept (VOICEFLOW_RECORD_TRANSCRIPTS is off)"
        lines = ((line.get("role", ""), line.get("text", "")) for line in record.transcript)
        rows = format_html_join("", "<p><strong>{}</strong>: {}</p>", lines)
        return format_html('<div class="voiceflow-transcript">{}</div>', rows)

    @admin.display(description="audio")
    def audio(self, record: CallRecord) -> SafeString | str:
        names = record.audio_files
        if not names:
            return "not kept (VOICEFLOW_RECORD_AUDIO is off)"
        players = ((default_storage.url(name),) for name in names)
        return format_html_join("", '<audio controls preload="none" src="{}"></audio><br>', players)


def _offset_ms(record: CallRecord, leg: dict[str, Any]) -> int:
    try:
        started = datetime.fromisoformat(str(leg.get("started_at")))
    except ValueError:
        return 0
    return max(int((started - record.started_at).total_seconds() * 1000), 0)
