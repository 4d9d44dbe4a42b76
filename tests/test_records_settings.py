"""The call records' settings: their defaults, the checks that reject bad values (W001 for a
switch, E001 for the retention, W005 for a record switch that keeps nothing, W006 for records
with no database), and the example project's DATABASE_URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from example_project.database import database
from voiceflow_channels import conf
from voiceflow_channels.checks import check_settings


def ids() -> list[str]:
    return [m.id for m in check_settings()]


@pytest.fixture
def records_settings(settings, monkeypatch):
    monkeypatch.delenv("VOICEFLOW_CALL_RECORDS", raising=False)
    return settings


def test_the_defaults(records_settings):
    assert conf.call_records() is True
    assert conf.record_transcripts() is conf.record_audio() is conf.record_caller_number() is False
    assert conf.records_retention_days() == 30
    assert ids() == []


@pytest.mark.parametrize(
    "name",
    [
        "VOICEFLOW_CALL_RECORDS",
        "VOICEFLOW_RECORD_TRANSCRIPTS",
        "VOICEFLOW_RECORD_AUDIO",
        "VOICEFLOW_RECORD_CALLER_NUMBER",
    ],
)
def test_a_switch_that_is_not_one_is_a_warning(records_settings, name):
    setattr(records_settings, name, "maybe")
    messages = check_settings()
    assert [m.id for m in messages] == ["voiceflow_channels.W001"]
    assert name in messages[0].msg


@pytest.mark.parametrize("days", ["0", "-3", "a month", True])
def test_a_retention_that_is_not_a_whole_number_of_days_is_an_error(records_settings, days):
    records_settings.VOICEFLOW_RECORDS_RETENTION_DAYS = days
    [message] = check_settings()
    assert message.id == "voiceflow_channels.E001" and "days" in message.hint


def test_words_or_audio_asked_for_with_records_off_is_a_warning_each(records_settings):
    records_settings.VOICEFLOW_CALL_RECORDS = "0"
    records_settings.VOICEFLOW_RECORD_AUDIO = "1"
    records_settings.VOICEFLOW_RECORD_TRANSCRIPTS = "yes"
    messages = check_settings()
    assert [m.id for m in messages] == ["voiceflow_channels.W005"] * 2
    assert "VOICEFLOW_RECORD_TRANSCRIPTS" in messages[0].msg
    assert "VOICEFLOW_RECORD_AUDIO" in messages[1].msg


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_records_with_no_database_is_a_warning(records_settings):
    records_settings.DATABASES = {}
    [message] = check_settings()
    assert message.id == "voiceflow_channels.W006" and "VOICEFLOW_CALL_RECORDS=0" in message.hint
    records_settings.VOICEFLOW_CALL_RECORDS = "off"
    assert check_settings() == []


def test_database_url_sqlite_in_the_checkout_and_postgres():
    base = Path("/srv/app")
    assert database("sqlite:///db.sqlite3", base) == {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": "/srv/app/db.sqlite3",
    }
    assert database("sqlite:////var/lib/calls.sqlite3", base)["NAME"] == "/var/lib/calls.sqlite3"
    assert database("postgres://app:p%40ss@db.internal:6543/calls", base) == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "calls",
        "USER": "app",
        "PASSWORD": "p@ss",
        "HOST": "db.internal",
        "PORT": "6543",
    }
    with pytest.raises(ValueError, match=r"mysql://\.\.\. is not supported"):
        database("mysql://root@localhost/x", base)
