from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from voiceflow_channels.feature import FEATURE


class Command(BaseCommand):
    help = "Run Voice Flow A's selftests and security checks and print its load budget."

    def handle(self, *args: Any, **options: Any) -> None:
        failed = []
        for name in ("selftests", "security_checks"):
            result = FEATURE[name]()
            style = self.style.SUCCESS if result["ok"] else self.style.ERROR
            self.stdout.write(
                style(f"{name}: {'ok' if result['ok'] else 'FAILED'}: {result['message']}")
            )
            if not result["ok"]:
                failed.append(name)
        self.stdout.write(
            f"load_profile (declared budget): {json.dumps(FEATURE['load_profile']())}"
        )
        if failed:
            raise CommandError(f"voiceflow_selftest failed: {', '.join(failed)}")
