"""`manage.py voiceflow_prune [--dry-run] [--days N]`: delete the call records (and their audio)
older than VOICEFLOW_RECORDS_RETENTION_DAYS. Run it daily (cron, a scheduled job)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from ... import conf
from ...models import CallRecord


class Command(BaseCommand):
    help = "Delete call records, and their audio, older than VOICEFLOW_RECORDS_RETENTION_DAYS."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Say what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help="Keep this many days instead of VOICEFLOW_RECORDS_RETENTION_DAYS.",
        )

    def handle(self, *args: Any, dry_run: bool, days: int | None, **options: Any) -> None:
        keep = conf.records_retention_days() if days is None else days
        if keep < 1:
            self.stderr.write(f"--days={keep}: keep at least 1 day.")
            raise SystemExit(2)
        cutoff = timezone.now() - timedelta(days=keep)
        old = CallRecord.objects.filter(started_at__lt=cutoff)
        audio = [name for record in old.only("legs") for name in record.audio_files]
        count = old.count()
        if dry_run:
            self.stdout.write(
                f"would delete {count} call records and {len(audio)} audio files "
                f"started before {cutoff:%Y-%m-%d %H:%M} UTC (dry run)"
            )
            return
        for name in audio:
            default_storage.delete(name)
        old.delete()
        self.stdout.write(
            f"deleted {count} call records and {len(audio)} audio files started before "
            f"{cutoff:%Y-%m-%d %H:%M} UTC"
        )
