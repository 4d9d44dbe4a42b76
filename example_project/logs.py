"""Log formatting for the example project."""

from __future__ import annotations

import logging
import time


class UTCFormatter(logging.Formatter):
    """`%(asctime)s` in UTC with milliseconds and a Z (2026-11-25T15:04:05.123Z), whatever the
    process's time zone: lines from several hosts then sort and compare as they are."""

    converter = time.gmtime
    default_time_format = "%Y-%m-%dT%H:%M:%S"
    default_msec_format = "%s.%03dZ"
