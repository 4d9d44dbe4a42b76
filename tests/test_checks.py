"""System checks, the settings module and the selftest command."""

from __future__ import annotations

import wave

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from voiceflow_channels import conf
from voiceflow_channels.chime import synthesize_chime, write_wav
from voiceflow_channels.mulaw import linear_to_mulaw, mulaw_to_linear
from voiceflow_channels.routing import build_router


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VOICE_WAIT_SOUND_TRIGGER_MS", "soon"),
        ("VOICE_WAIT_SOUND_TRIGGER_MS", -1),
        ("VOICE_WAIT_SOUND_TRIGGER_MS", "1.5"),
        ("VOICE_WAIT_SOUND_TRIGGER_MS", True),
        ("VOICEFLOW_MAX_MESSAGE_BYTES", 0),
        ("VOICEFLOW_MAX_TENANT_CHARS", "many"),
        ("VOICE_WAIT_SOUND_REPEAT_MS", 0),
        ("VOICEFLOW_PLAYBACK_LEAD_MS", "300ms"),
        ("VOICEFLOW_MARK_EVERY_MS", -20),
        ("VOICEFLOW_MAX_QUEUED_AUDIO_MS", None),
    ],
)
def test_bad_integer_settings_are_errors_naming_setting_value_and_fix(settings, name, value):
    setattr(settings, name, value)
    with pytest.raises(SystemCheckError) as error:
        call_command("check")
    text = str(error.value)
    assert "voiceflow_channels.E001" in text
    assert f"{name}={value!r}" in text
    assert "HINT: Set " in text


def test_bad_settings_stop_the_router_from_being_built(settings):
    settings.VOICE_WAIT_SOUND_TRIGGER_MS = "soon"
    with pytest.raises(ImproperlyConfigured, match="VOICE_WAIT_SOUND_TRIGGER_MS='soon'"):
        build_router()


@pytest.mark.parametrize(
    ("every", "lead", "queued"),
    [(30, 300, 60000), (200, 100, 60000), (100, 300, 200)],
)
def test_playback_settings_that_do_not_fit_together_are_an_error(settings, every, lead, queued):
    settings.VOICEFLOW_MARK_EVERY_MS = every
    settings.VOICEFLOW_PLAYBACK_LEAD_MS = lead
    settings.VOICEFLOW_MAX_QUEUED_AUDIO_MS = queued
    with pytest.raises(SystemCheckError) as error:
        call_command("check")
    text = str(error.value)
    assert "voiceflow_channels.E004" in text
    assert f"VOICEFLOW_MARK_EVERY_MS={every}, VOICEFLOW_PLAYBACK_LEAD_MS={lead}" in text
    assert "multiple of 20" in text


def test_playback_settings_are_read(settings):
    settings.VOICEFLOW_MARK_EVERY_MS = "40"
    settings.VOICEFLOW_PLAYBACK_LEAD_MS = 200
    call_command("check")
    assert (conf.mark_every_ms(), conf.playback_lead_ms(), conf.max_queued_audio_ms()) == (
        40,
        200,
        60000,
    )


def test_a_wait_sound_file_that_cannot_play_is_an_error_at_start(settings, tmp_path):
    stereo = tmp_path / "stereo.wav"
    write_stereo_wav(stereo)
    for path, found in ((stereo, "8000 Hz stereo 16-bit PCM"), (tmp_path / "none.wav", "read")):
        settings.VOICE_WAIT_SOUND_FILE = str(path)
        with pytest.raises(SystemCheckError) as error:
            call_command("check")
        text = str(error.value)
        assert "voiceflow_channels.E005" in text and f"VOICE_WAIT_SOUND_FILE='{path}'" in text
        assert found in text and "HINT: Convert it" in text
    with pytest.raises(ImproperlyConfigured, match="E005"):
        build_router()


def test_a_good_wait_sound_file_is_the_chime(settings, tmp_path):
    path = tmp_path / "tone.wav"
    write_wav(path, b"\x10" * 800)
    settings.VOICE_WAIT_SOUND_FILE = str(path)
    call_command("check")
    assert conf.chime_audio() == linear_to_mulaw(mulaw_to_linear(b"\x10" * 800))
    settings.VOICE_WAIT_SOUND_FILE = ""
    assert conf.chime_audio() == synthesize_chime()


def write_stereo_wav(path) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00" * 3200)


def test_digit_strings_from_the_env_are_fine(settings):
    settings.VOICE_WAIT_SOUND_TRIGGER_MS = " 1200 "
    call_command("check")
    assert conf.voice_wait_sound_trigger_ms() == 1200


def test_env_var_is_read_when_the_setting_is_absent(settings, monkeypatch):
    del settings.VOICE_WAIT_SOUND_TRIGGER_MS
    monkeypatch.setenv("VOICE_WAIT_SOUND_TRIGGER_MS", "250")
    assert conf.voice_wait_sound_trigger_ms() == 250
    monkeypatch.delenv("VOICE_WAIT_SOUND_TRIGGER_MS")
    assert conf.voice_wait_sound_trigger_ms() == 800


@pytest.mark.parametrize(
    ("value", "on"),
    [
        ("1", True),
        ("true", True),
        ("YES", True),
        (" On ", True),
        (True, True),
        ("0", False),
        ("", False),
        ("off", False),
        (False, False),
        (None, False),
    ],
)
def test_flag_values(settings, value, on):
    settings.VOZ_FEATURE_VOICE_FLOW_A = value
    assert conf.voz_feature_voice_flow_a() is on


def test_unrecognised_flag_word_warns_and_is_off(settings, capsys):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "enabled"
    call_command("check")
    assert "voiceflow_channels.W001" in capsys.readouterr().err
    assert conf.voz_feature_voice_flow_a() is False


@pytest.mark.parametrize(
    "url",
    [
        "https://voice.example.com",
        "voice.example.com",
        "wss://",
        "wss://voice.example.com?x=1",
        "wss://h:port",
    ],
)
def test_bad_public_url_is_an_error(settings, url):
    settings.VOICEFLOW_PUBLIC_URL = url
    with pytest.raises(SystemCheckError, match=r"voiceflow_channels\.E002"):
        call_command("check")


def test_token_without_public_url_is_an_error(settings):
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    settings.VOICEFLOW_PUBLIC_URL = ""
    with pytest.raises(SystemCheckError) as error:
        call_command("check")
    assert "voiceflow_channels.E003" in str(error.value)
    assert "secret-token" not in str(error.value)


def test_deploy_check_flags_a_missing_token(settings, capsys):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "1"
    settings.TWILIO_AUTH_TOKEN = ""
    call_command("check", deploy=True)
    err = capsys.readouterr().err
    assert "voiceflow_channels.W002" in err
    assert "HINT: Set TWILIO_AUTH_TOKEN" in err


def test_deploy_check_is_quiet_with_a_token(settings, capsys):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "1"
    settings.TWILIO_AUTH_TOKEN = "t"
    settings.VOICEFLOW_PUBLIC_URL = "wss://voice.example.com"
    call_command("check", deploy=True)
    assert "voiceflow_channels.W002" not in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["0", "1"])
def test_selftest_command_passes(settings, capsys, flag):
    settings.VOZ_FEATURE_VOICE_FLOW_A = flag
    call_command("voiceflow_selftest")
    out = capsys.readouterr().out
    assert "selftests: ok" in out and "security_checks: ok" in out
    assert 'load_profile (declared budget): {"hint": "ws-parse", "p50_ms": 10, "p95_ms": 50}' in out


def test_selftest_command_fails_when_a_check_fails(settings, monkeypatch):
    from voiceflow_channels import feature

    monkeypatch.setitem(
        feature.FEATURE, "security_checks", lambda: {"ok": False, "message": "broken on purpose"}
    )
    with pytest.raises(CommandError, match="security_checks"):
        call_command("voiceflow_selftest")


def test_selftest_signs_its_own_connect_when_a_token_is_set(settings, capsys):
    settings.TWILIO_AUTH_TOKEN = "t"
    settings.VOICEFLOW_PUBLIC_URL = "wss://voice.example.com"
    call_command("voiceflow_selftest")
    assert "signature check on" in capsys.readouterr().out


def test_feature_contract():
    from voiceflow_channels.feature import FEATURE

    assert FEATURE["enabled_env"] == "VOZ_FEATURE_VOICE_FLOW_A"
    assert FEATURE["load_profile"]() == {"hint": "ws-parse", "p50_ms": 10, "p95_ms": 50}
    for name in ("selftests", "security_checks"):
        result = FEATURE[name]()
        assert result["ok"] is True and isinstance(result["message"], str)
