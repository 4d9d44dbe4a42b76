"""The example project's log lines carry UTC timestamps, whatever the process's time zone."""

from __future__ import annotations

import calendar
import copy
import logging
import logging.config
import os
import time

import pytest
from django.conf import settings

# 2026-11-25T15:04:05.123Z
INSTANT = calendar.timegm((2026, 11, 25, 15, 4, 5)) + 0.123


@pytest.fixture(params=["CST6CDT,M3.2.0,M11.1.0", "IST-5:30", "UTC0"])
def process_tz(request):
    """The process's TZ set to a POSIX rule (needs no tz database), restored afterwards."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def configured_formatter() -> logging.Formatter:
    """The formatter the example's LOGGING gives its console handler, built as dictConfig does
    but without reconfiguring this process's logging."""
    configurator = logging.config.DictConfigurator(copy.deepcopy(settings.LOGGING))
    name = configurator.config["handlers"]["console"]["formatter"]
    return configurator.configure_formatter(configurator.config["formatters"][name])


def test_the_example_logs_utc_timestamps_with_a_z(process_tz):
    record = logging.LogRecord(
        "voiceflow_channels", logging.INFO, __file__, 1, "voiceflow call ended", None, None
    )
    record.created, record.msecs = INSTANT, 123
    if process_tz != "UTC0":  # the zone really is in force: local time is not UTC's
        assert time.localtime(INSTANT).tm_hour != 15
    line = configured_formatter().format(record)
    assert line == "2026-11-25T15:04:05.123Z INFO voiceflow_channels voiceflow call ended"
