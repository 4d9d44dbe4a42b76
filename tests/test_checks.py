"""System checks, the settings module and the selftest command.

The checks are tested as django-cors-headers tests its own: each configuration's exact list of
check IDs, from the check functions themselves, so a second error (or a missing one) shows."""

from __future__ import annotations

import wave

import pytest
from django.core.checks import CheckMessage
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError, SystemCheckError

from voiceflow_channels import conf
from voiceflow_channels.checks import check_deploy, check_settings
from voiceflow_channels.chime import synthesize_chime, write_wav
from voiceflow_channels.mulaw import linear_to_mulaw, mulaw_to_linear
from voiceflow_channels.routing import build_router

E001 = "voiceflow_channels.E001"
E002 = "voiceflow_channels.E002"
E003 = "voiceflow_channels.E003"
E004 = "voiceflow_channels.E004"
E005 = "voiceflow_channels.E005"
E006 = "voiceflow_channels.E006"
E007 = "voiceflow_channels.E007"
E008 = "voiceflow_channels.E008"
E009 = "voiceflow_channels.E009"
W001 = "voiceflow_channels.W001"
W002 = "voiceflow_channels.W002"
W003 = "voiceflow_channels.W003"
W004 = "voiceflow_channels.W004"
REDIS_CACHE = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache"}}
REDIS_LAYER = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}


def ids(messages: list[CheckMessage]) -> list[str]:
    return [m.id for m in messages]


def test_the_defaults_raise_nothing():
    assert ids(check_settings()) == []
    assert ids(check_deploy()) == []


def test_the_defaults_pass_manage_py_check(capsys):
    call_command("check")
    assert "System check identified no issues" in capsys.readouterr().out


def test_a_deployment_with_the_flag_a_token_and_its_url_raises_nothing(settings):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "1"
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    settings.VOICEFLOW_PUBLIC_URL = "wss://voice.example.com"
    assert ids(check_settings()) == []
    assert ids(check_deploy()) == []


@pytest.mark.parametrize(
    ("name", "value", "unit"),
    [
        ("VOICE_WAIT_SOUND_TRIGGER_MS", "soon", "milliseconds"),
        ("VOICE_WAIT_SOUND_TRIGGER_MS", -1, "milliseconds"),
        ("VOICE_WAIT_SOUND_TRIGGER_MS", "1.5", "milliseconds"),
        ("VOICE_WAIT_SOUND_TRIGGER_MS", True, "milliseconds"),
        ("VOICE_WAIT_SOUND_REPEAT_MS", 0, "milliseconds"),
        ("VOICEFLOW_PLAYBACK_LEAD_MS", "300ms", "milliseconds"),
        ("VOICEFLOW_MARK_EVERY_MS", -20, "milliseconds"),
        ("VOICEFLOW_MAX_QUEUED_AUDIO_MS", None, "milliseconds"),
        ("VOICEFLOW_PART_TIMEOUT_MS", 0, "milliseconds"),
        ("VOICEFLOW_DRAIN_SECONDS", -1, "seconds"),
        ("VOICEFLOW_START_TIMEOUT_S", 0, "seconds"),
        ("VOICEFLOW_IDLE_TIMEOUT_S", "ten", "seconds"),
        ("VOICEFLOW_MAX_STREAMS", 0, "streams"),
        ("VOICEFLOW_MAX_MESSAGE_BYTES", 0, "bytes"),
        ("VOICEFLOW_MAX_TENANT_CHARS", "many", "characters"),
        ("VOICEFLOW_MAX_CUSTOM_PARAMETERS", -3, "parameters"),
        ("VOICEFLOW_RECONNECTS", -1, "reconnects"),
        ("VOICEFLOW_RECONNECTS", "twice", "reconnects"),
        ("VOICEFLOW_MODEL_RETRIES", -1, "retries"),
        ("VOICEFLOW_MIN_BARGE_IN_MS", "short", "milliseconds"),
        ("VOICEFLOW_CONVERSATION_MAX_ITEMS", 0, "items"),
        ("VOICEFLOW_TOOL_THREADS", 0, "threads"),
        ("VOICEFLOW_TOOL_THREADS", "many", "threads"),
        ("VOICEFLOW_TENANT_RESOLVER_TIMEOUT_S", 0, "seconds"),
        ("VOICEFLOW_DTMF_GAP_MS", 0, "milliseconds"),
        ("VOICEFLOW_IDLE_REPROMPT_MS", -1, "milliseconds"),
        ("VOICEFLOW_IDLE_REPROMPTS", "twice", "check-ins"),
        ("VOICEFLOW_MAX_CALL_SECONDS", "30m", "seconds"),
    ],
)
def test_a_bad_integer_setting_is_one_error_naming_the_setting_the_value_and_its_unit(
    settings, name, value, unit
):
    setattr(settings, name, value)
    [error] = check_settings()
    assert error.id == E001
    assert error.msg.startswith(f"{name}={value!r} is not a whole number >= ")
    assert error.hint.startswith(f"Set {name} to a whole number of {unit} >= ")
    assert error.hint.endswith(f"or unset it for the default ({conf.INT_SETTINGS[name]}).")


@pytest.mark.parametrize(
    "name",
    [
        "VOICE_WAIT_SOUND_TRIGGER_MS",
        "VOICEFLOW_DRAIN_SECONDS",
        "VOICEFLOW_RECONNECTS",
        "VOICEFLOW_MODEL_RETRIES",
        "VOICEFLOW_IDLE_REPROMPT_MS",
        "VOICEFLOW_IDLE_REPROMPTS",
        "VOICEFLOW_MAX_CALL_SECONDS",
        "VOICEFLOW_MIN_BARGE_IN_MS",
    ],
)
def test_zero_is_allowed_where_it_means_at_once_or_never(settings, name):
    setattr(settings, name, 0)
    assert ids(check_settings()) == []


def test_manage_py_check_stops_on_a_bad_setting_and_shows_its_hint(settings):
    settings.VOICE_WAIT_SOUND_TRIGGER_MS = "soon"
    with pytest.raises(SystemCheckError) as error:
        call_command("check")
    text = str(error.value)
    assert "voiceflow_channels.E001" in text
    assert "VOICE_WAIT_SOUND_TRIGGER_MS='soon' is not a whole number >= 0." in text
    assert "HINT: Set VOICE_WAIT_SOUND_TRIGGER_MS to a whole number of milliseconds >= 0" in text


def test_bad_settings_stop_the_router_from_being_built(settings):
    settings.VOICE_WAIT_SOUND_TRIGGER_MS = "soon"
    with pytest.raises(ImproperlyConfigured, match="VOICE_WAIT_SOUND_TRIGGER_MS='soon'"):
        build_router()


@pytest.mark.parametrize(
    ("every", "lead", "queued"),
    [(30, 300, 60000), (200, 100, 60000), (100, 300, 200)],
)
def test_playback_settings_that_do_not_fit_together_are_one_error(settings, every, lead, queued):
    settings.VOICEFLOW_MARK_EVERY_MS = every
    settings.VOICEFLOW_PLAYBACK_LEAD_MS = lead
    settings.VOICEFLOW_MAX_QUEUED_AUDIO_MS = queued
    [error] = check_settings()
    assert error.id == E004
    assert error.msg == (
        f"VOICEFLOW_MARK_EVERY_MS={every}, VOICEFLOW_PLAYBACK_LEAD_MS={lead} and "
        f"VOICEFLOW_MAX_QUEUED_AUDIO_MS={queued} do not fit together."
    )
    assert "multiple of 20" in error.hint


@pytest.mark.parametrize("name", ["VOICEFLOW_PLAYBACK_LEAD_MS", "VOICEFLOW_MAX_QUEUED_AUDIO_MS"])
def test_a_zero_playback_setting_is_out_of_range_and_does_not_fit_the_others(settings, name):
    setattr(settings, name, 0)
    out_of_range, misfit = check_settings()
    assert ids([out_of_range, misfit]) == [E001, E004]
    assert out_of_range.msg == f"{name}=0 is not a whole number >= 1."
    assert f"{name}=0" in misfit.msg


def test_a_playback_setting_that_is_not_a_number_is_only_an_out_of_range_error(settings):
    settings.VOICEFLOW_PLAYBACK_LEAD_MS = "300ms"
    assert ids(check_settings()) == [E001]


def test_every_bad_setting_is_reported_at_once_in_a_stable_order(settings):
    settings.VOZLIA_DEBUG = "loud"
    settings.VOICEFLOW_MAX_STREAMS = "lots"
    settings.VOICEFLOW_MARK_EVERY_MS = 30
    settings.VOICE_WAIT_SOUND_FILE = "/nonexistent/chime.wav"
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    settings.VOICEFLOW_PUBLIC_URL = ""
    settings.VOICEFLOW_TENANT_RESOLVER = "nowhere.resolver"
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = "+1 555,+15551234567,555"
    settings.VOICEFLOW_TRANSFER_CALLER_ID = "me"
    settings.CHANNEL_LAYERS = REDIS_LAYER
    messages = check_settings()
    assert ids(messages) == [W001, E001, E004, E005, E003, E006, E007, E007, E009, W003]
    assert messages[1].msg.startswith("VOICEFLOW_MAX_STREAMS='lots' ")
    settings.VOICEFLOW_CALL_CONTROL_CACHE = "calls"
    assert ids(check_settings())[-1] == E008


def test_manage_py_check_shows_each_error_of_a_bad_configuration(settings):
    settings.VOICEFLOW_PLAYBACK_LEAD_MS = 0
    with pytest.raises(SystemCheckError) as error:
        call_command("check")
    text = str(error.value)
    assert text.count("voiceflow_channels.E001") == 1
    assert text.count("voiceflow_channels.E004") == 1
    assert "System check identified 2 issues" in text


def test_playback_settings_are_read(settings):
    settings.VOICEFLOW_MARK_EVERY_MS = "40"
    settings.VOICEFLOW_PLAYBACK_LEAD_MS = 200
    assert ids(check_settings()) == []
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
        [error] = check_settings()
        assert error.id == E005
        assert error.msg.startswith(f"VOICE_WAIT_SOUND_FILE='{path}' cannot be played: ")
        assert found in error.msg and error.hint.startswith("Convert it")
    with pytest.raises(ImproperlyConfigured, match="E005"):
        build_router()


def test_a_good_wait_sound_file_is_the_chime(settings, tmp_path):
    path = tmp_path / "tone.wav"
    write_wav(path, b"\x10" * 800)
    settings.VOICE_WAIT_SOUND_FILE = str(path)
    assert ids(check_settings()) == []
    assert conf.chime_audio() == linear_to_mulaw(mulaw_to_linear(b"\x10" * 800))
    settings.VOICE_WAIT_SOUND_FILE = ""
    assert conf.chime_audio() == synthesize_chime()


def test_a_fallback_sound_file_that_cannot_play_is_an_error_and_a_good_one_is_played(
    settings, tmp_path
):
    from voiceflow_channels.realtime.fallback import fallback_audio, synthesize_fallback

    stereo = tmp_path / "stereo.wav"
    write_stereo_wav(stereo)
    settings.VOICEFLOW_FALLBACK_SOUND_FILE = str(stereo)
    [error] = check_settings()
    assert error.id == E005
    assert error.msg.startswith(f"VOICEFLOW_FALLBACK_SOUND_FILE='{stereo}' cannot be played: ")
    assert "unset VOICEFLOW_FALLBACK_SOUND_FILE for the built-in fallback" in error.hint
    good = tmp_path / "sorry.wav"
    write_wav(good, b"\x20" * 1600)
    settings.VOICEFLOW_FALLBACK_SOUND_FILE = str(good)
    assert ids(check_settings()) == []
    assert fallback_audio() == linear_to_mulaw(mulaw_to_linear(b"\x20" * 1600))
    settings.VOICEFLOW_FALLBACK_SOUND_FILE = ""
    assert fallback_audio() == synthesize_fallback()
    assert len(synthesize_fallback()) % 160 == 0, "whole frames"


def write_stereo_wav(path) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00" * 3200)


def test_digit_strings_from_the_env_are_fine(settings):
    settings.VOICE_WAIT_SOUND_TRIGGER_MS = " 1200 "
    assert ids(check_settings()) == []
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


@pytest.mark.parametrize(
    "name", ["VOZ_FEATURE_VOICE_FLOW_A", "VOZLIA_DEBUG", "VOICEFLOW_DTMF_TO_MODEL"]
)
def test_an_unrecognised_switch_word_is_one_warning_and_the_switch_is_off(settings, name):
    setattr(settings, name, "enabled")
    [warning] = check_settings()
    assert warning.id == W001
    assert (
        warning.msg == f"{name}='enabled' is not a recognised switch value; it is treated as OFF."
    )
    assert warning.hint == f"Set {name} to 1/true/yes/on to turn it on, or 0/false/no/off."
    assert getattr(conf, name.lower().removeprefix("voiceflow_"))() is False


def test_keys_go_to_the_model_unless_turned_off(settings):
    assert conf.dtmf_to_model() is True
    settings.VOICEFLOW_DTMF_TO_MODEL = "0"
    assert conf.dtmf_to_model() is False
    assert ids(check_settings()) == []


def test_each_unrecognised_switch_is_a_warning_of_its_own(settings):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "enabled"
    settings.VOZLIA_DEBUG = "loud"
    flag, debug = check_settings()
    assert ids([flag, debug]) == [W001, W001]
    assert flag.msg.startswith("VOZ_FEATURE_VOICE_FLOW_A='enabled' ")
    assert debug.msg.startswith("VOZLIA_DEBUG='loud' ")


def test_manage_py_check_shows_a_switch_warning_without_failing(settings, capsys):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "enabled"
    call_command("check")
    assert "voiceflow_channels.W001" in capsys.readouterr().err


@pytest.mark.parametrize(
    "url",
    [
        "https://voice.example.com",
        "voice.example.com",
        "wss://",
        "wss://voice.example.com?x=1",
        "wss://voice.example.com#x",
        "wss://h:port",
        "wss://voice.example.com/twilio/stream",
        "wss://voice.example.com/voice",
        " wss://voice.example.com",
        "wss://voice.example.com ",
        "wss://voice.example.com\n",
    ],
)
def test_a_public_url_that_is_not_a_ws_base_url_is_one_error(settings, url):
    settings.VOICEFLOW_PUBLIC_URL = url
    [error] = check_settings()
    assert error.id == E002
    seen = url.rstrip("/")  # conf.public_url() drops trailing slashes before the check
    assert error.msg == f"VOICEFLOW_PUBLIC_URL={seen!r} is not a ws:// or wss:// base URL."
    assert error.hint.endswith("without the path, e.g. wss://voice.example.com.")


def test_a_token_with_a_bad_public_url_is_only_the_url_error(settings):
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    settings.VOICEFLOW_PUBLIC_URL = "https://voice.example.com"
    assert ids(check_settings()) == [E002]


def test_a_token_without_a_public_url_is_one_error_that_does_not_show_the_token(settings):
    settings.TWILIO_AUTH_TOKEN = "secret-token"
    settings.VOICEFLOW_PUBLIC_URL = ""
    [error] = check_settings()
    assert error.id == E003
    assert error.msg.startswith("TWILIO_AUTH_TOKEN is set but VOICEFLOW_PUBLIC_URL is not")
    assert error.hint.startswith("Set VOICEFLOW_PUBLIC_URL to the base URL")
    assert "secret-token" not in error.msg + error.hint


@pytest.mark.parametrize("url", ["wss://voice.example.com/", "ws://127.0.0.1:8000"])
def test_a_base_url_with_no_path_but_a_slash_or_with_a_port_is_fine(settings, url):
    settings.VOICEFLOW_PUBLIC_URL = url
    assert ids(check_settings()) == []


def test_the_deploy_check_warns_once_when_the_flag_is_on_without_a_token(settings):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "1"
    settings.TWILIO_AUTH_TOKEN = ""
    settings.VOICEFLOW_PUBLIC_URL = "wss://voice.example.com"
    assert ids(check_settings()) == []
    [warning] = check_deploy()
    assert warning.id == W002
    assert warning.msg.startswith("TWILIO_AUTH_TOKEN is not set: /twilio/stream accepts ")
    assert warning.hint.startswith("Set TWILIO_AUTH_TOKEN (the account's auth token)")
    settings.VOICEFLOW_STREAM_PREFIX = "/voice/"
    [warning] = check_deploy()
    assert warning.msg.startswith("TWILIO_AUTH_TOKEN is not set: /voice/twilio/stream accepts ")


def test_the_deploy_check_is_quiet_while_the_flag_is_off(settings):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "0"
    settings.TWILIO_AUTH_TOKEN = ""
    assert ids(check_deploy()) == []


def test_manage_py_check_runs_the_deploy_check_only_when_asked(settings, capsys):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "1"
    settings.TWILIO_AUTH_TOKEN = ""
    call_command("check")
    assert "voiceflow_channels.W002" not in capsys.readouterr().err
    call_command("check", deploy=True)
    err = capsys.readouterr().err
    assert "voiceflow_channels.W002" in err
    assert "HINT: Set TWILIO_AUTH_TOKEN" in err


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


def test_the_flag_on_without_a_public_url_warns_that_the_voice_webhook_cannot_answer(settings):
    settings.VOZ_FEATURE_VOICE_FLOW_A = "1"
    settings.TWILIO_AUTH_TOKEN = ""
    settings.VOICEFLOW_PUBLIC_URL = ""
    [warning] = check_settings()
    assert warning.id == W004
    assert warning.msg.startswith("VOICEFLOW_PUBLIC_URL is not set: POST /twilio/voice answers 503")
    assert "SILENCED_SYSTEM_CHECKS" in warning.hint
    settings.VOZ_FEATURE_VOICE_FLOW_A = "0"
    assert ids(check_settings()) == []


def no_tenant(request) -> None:
    """A tenant resolver, as VOICEFLOW_TENANT_RESOLVER names one."""


def test_a_call_control_deployment_raises_nothing(settings):
    settings.VOICEFLOW_TENANT_RESOLVER = "tests.test_checks.no_tenant"
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = ["+15551234567", "+4420*", "sip:*@pbx.example.com"]
    settings.VOICEFLOW_TRANSFER_CALLER_ID = "+15550001111"
    settings.VOICEFLOW_RECONNECTS = "0"
    settings.CHANNEL_LAYERS = REDIS_LAYER
    settings.CACHES = REDIS_CACHE
    assert ids(check_settings()) == []
    assert conf.reconnects() == 0


@pytest.mark.parametrize(
    ("path", "problem"),
    [
        ("nowhere.resolver", "cannot be imported (ModuleNotFoundError: "),
        ("voiceflow_channels.conf.no_such_function", "cannot be imported (ImportError: "),
        ("resolver", "cannot be imported (ImportError: "),
        ("voiceflow_channels.conf.TRUTHY", "names a frozenset, not a callable"),
    ],
)
def test_a_tenant_resolver_that_cannot_be_called_is_one_error(settings, path, problem):
    settings.VOICEFLOW_TENANT_RESOLVER = path
    [error] = check_settings()
    assert error.id == E006
    assert error.msg.startswith(f"VOICEFLOW_TENANT_RESOLVER={path!r} {problem}")
    assert error.hint.startswith("Set it to the dotted path of a function that takes the ")


def test_each_bad_allowlist_entry_is_an_error_of_its_own(settings):
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = ["+15551234567", "+1 555 0100", "*", 42, ""]
    messages = check_settings()
    assert ids(messages) == [E007, E007, E007]
    assert [m.msg.split(" is ")[0] for m in messages] == [
        "VOICEFLOW_TRANSFER_ALLOWLIST entry '+1 555 0100'",
        "VOICEFLOW_TRANSFER_ALLOWLIST entry '*'",
        "VOICEFLOW_TRANSFER_ALLOWLIST entry 42",
    ]
    assert messages[0].hint.startswith("List the destinations calls may be transferred to")
    settings.VOICEFLOW_TRANSFER_ALLOWLIST = 15551234567
    [error] = check_settings()
    assert error.msg == (
        "VOICEFLOW_TRANSFER_ALLOWLIST=15551234567 is a int, not a list or comma-separated string."
    )


@pytest.mark.parametrize("caller_id", ["me", "15551234567", "+1 555 0100", "sip:me@x.com"])
def test_a_caller_id_that_is_not_e164_is_one_error(settings, caller_id):
    settings.VOICEFLOW_TRANSFER_CALLER_ID = caller_id
    [error] = check_settings()
    assert error.id == E009
    assert error.msg == f"VOICEFLOW_TRANSFER_CALLER_ID={caller_id!r} is not an E.164 number."


def test_a_call_control_cache_missing_from_caches_is_one_error_naming_those_there(settings):
    settings.VOICEFLOW_CALL_CONTROL_CACHE = "calls"
    [error] = check_settings()
    assert error.id == E008
    assert error.msg == "VOICEFLOW_CALL_CONTROL_CACHE='calls' is not in CACHES ('default')."


def test_a_conversation_cache_missing_from_caches_is_one_error_and_unset_it_follows(settings):
    settings.VOICEFLOW_CONVERSATION_CACHE = "talk"
    [error] = check_settings()
    assert error.id == E008
    assert error.msg == "VOICEFLOW_CONVERSATION_CACHE='talk' is not in CACHES ('default')."
    del settings.VOICEFLOW_CONVERSATION_CACHE
    settings.VOICEFLOW_CALL_CONTROL_CACHE = "calls"
    [error] = check_settings()
    assert error.msg.startswith("VOICEFLOW_CALL_CONTROL_CACHE='calls'"), "one error, not two"


def test_a_shared_layer_with_a_per_process_cache_is_a_warning(settings):
    settings.CHANNEL_LAYERS = REDIS_LAYER
    [warning] = check_settings()
    assert warning.id == W003
    assert "is per process while the channel layer (channels_redis" in warning.msg
    assert warning.hint.startswith("Point it at a cache every server process shares")
    settings.CACHES = REDIS_CACHE
    assert ids(check_settings()) == []


def test_a_dummy_cache_loses_every_decision_even_in_one_process(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    [warning] = check_settings()
    assert warning.id == W003
    assert "stores nothing: every hang-up and transfer is lost" in warning.msg


@pytest.mark.parametrize("value", ["voice", "/voice/", "calls/v1", "a.b~c-d_e", "", "/"])
def test_a_stream_prefix_that_is_a_path_is_fine(settings, value):
    settings.VOICEFLOW_STREAM_PREFIX = value
    assert ids(check_settings()) == []


@pytest.mark.parametrize(
    "value", ["voice calls", "voice//x", "../admin", "voice/./x", "v?x=1", "vøice", 3, ["voice"]]
)
def test_a_stream_prefix_that_is_not_a_path_is_one_error(settings, value):
    settings.VOICEFLOW_STREAM_PREFIX = value
    [error] = check_settings()
    assert error.id == "voiceflow_channels.E010"
    assert error.msg == f"VOICEFLOW_STREAM_PREFIX={value!r} is not a URL path prefix."
