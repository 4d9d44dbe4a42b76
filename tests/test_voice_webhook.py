"""POST /twilio/voice and /twilio/voice/after as Twilio calls them, through the example project's
middleware (CSRF on): signed over the public URL, refused when not, and the TwiML they answer."""

from __future__ import annotations

import asyncio
import logging
import threading
import xml.etree.ElementTree as ET
from urllib.parse import urlencode

import pytest
from django.http import HttpRequest, QueryDict
from django.test import AsyncClient
from twilio.request_validator import RequestValidator
from twilio.twiml.voice_response import Connect, Dial, VoiceResponse

from tests.servers import django_shell, free_port
from tests.utils import metric
from voiceflow_channels import call_control, twiml
from voiceflow_channels.twilio_events import parse_twilio_start

TOKEN = "12345678901234567890123456789012"
PUBLIC = "wss://voice.example.com"
VOICE = "/twilio/voice"
AFTER = "/twilio/voice/after"
CALL_SID = "CA" + "0123456789abcdef" * 2
FORM_TYPE = "application/x-www-form-urlencoded"
pytestmark = pytest.mark.usefixtures("fresh_cache")
CALLER = "+15551234567"
DIALLED = "+15550001111"
TENANTS = {DIALLED: "acme"}


def by_dialled_number(request: HttpRequest) -> str | None:
    """A tenant resolver as a project writes one: the tenant of the number the caller dialled."""
    return TENANTS.get(request.POST.get("To", ""))


async def by_dialled_number_async(request: HttpRequest) -> str | None:
    return TENANTS.get(request.POST.get("To", ""))


def raising(request: HttpRequest) -> str:
    raise RuntimeError("the tenant database is down")


def junk(request: HttpRequest) -> object:
    return junk.value


SLOW_SYNC = threading.Event()
SLOW_ASYNC_CANCELLED = asyncio.Event()


def slow_sync(request: HttpRequest) -> str:
    """A resolver whose database hangs."""
    SLOW_SYNC.wait(timeout=10)
    return "acme"


async def slow_async(request: HttpRequest) -> str:
    try:
        await asyncio.Event().wait()
    finally:
        SLOW_ASYNC_CANCELLED.set()
    return "acme"


def twilio_form(**fields: str) -> dict[str, str]:
    """What Twilio POSTs to a voice URL, trimmed to what matters here."""
    form = {
        "CallSid": CALL_SID,
        "AccountSid": "AC" + "f" * 32,
        "From": CALLER,
        "To": DIALLED,
        "CallStatus": "ringing",
        "Direction": "inbound",
        "ApiVersion": "2010-04-01",
    }
    return {**form, **fields}


async def post(
    path: str,
    form: dict[str, str] | None = None,
    *,
    signed_url: str | None = None,
    content_type: str = FORM_TYPE,
    **headers: str,
):
    """POST `form` as Twilio does, signed over `signed_url` when given, with CSRF enforced."""
    form = twilio_form() if form is None else form
    if signed_url is not None:
        signature = RequestValidator(TOKEN).compute_signature(signed_url, form)
        headers["X-Twilio-Signature"] = signature
    client = AsyncClient(enforce_csrf_checks=True)
    body = urlencode(form, doseq=True)
    return await client.post(path, body, content_type=content_type, headers=headers)


def voice_response_with(verb: str, *args, **kwargs) -> str:
    """Twilio's own rendering of a response holding one `verb`."""
    response = VoiceResponse()
    getattr(response, verb)(*args, **kwargs)
    return str(response)


def parameters(response) -> dict[str, str]:
    """The `<Parameter>`s of a `<Connect><Stream>` answer."""
    root = ET.fromstring(response.content)
    return {p.get("name"): p.get("value") for p in root.iter("Parameter")}


@pytest.fixture
def public(flag_on):
    flag_on.VOICEFLOW_PUBLIC_URL = PUBLIC
    flag_on.VOICEFLOW_TENANT_RESOLVER = ""
    flag_on.VOICEFLOW_TRANSFER_ALLOWLIST = ["+15557654321", "sip:*@pbx.example.com"]
    flag_on.VOICEFLOW_TRANSFER_CALLER_ID = ""
    flag_on.VOICEFLOW_RECONNECTS = 2
    return flag_on


@pytest.fixture
def signed(public):
    public.TWILIO_AUTH_TOKEN = TOKEN
    return public


def test_the_example_project_runs_csrf_protection():
    from django.conf import settings

    assert "django.middleware.csrf.CsrfViewMiddleware" in settings.MIDDLEWARE


async def test_a_call_is_connected_to_the_public_stream_with_the_caller_and_its_action(public):
    response = await post(VOICE)
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    connect = Connect(action="https://voice.example.com/twilio/voice/after")
    stream = connect.stream(url="wss://voice.example.com/twilio/stream")
    stream.parameter(name="from_number", value=CALLER)
    stream.parameter(name="to_number", value=DIALLED)
    assert response.content.decode() == str(VoiceResponse().append(connect))


async def test_the_tenant_comes_from_the_resolver_by_the_dialled_number(public):
    public.VOICEFLOW_TENANT_RESOLVER = "tests.test_voice_webhook.by_dialled_number"
    assert parameters(await post(VOICE)) == {
        "from_number": CALLER,
        "to_number": DIALLED,
        "tenant_id": "acme",
    }
    other = twilio_form(To="+15559990000")
    assert parameters(await post(VOICE, other)) == {
        "from_number": CALLER,
        "to_number": "+15559990000",
    }
    public.VOICEFLOW_TENANT_RESOLVER = "tests.test_voice_webhook.by_dialled_number_async"
    assert parameters(await post(VOICE))["tenant_id"] == "acme"


async def test_the_parameters_survive_the_streams_own_start_parser(public):
    public.VOICEFLOW_TENANT_RESOLVER = "tests.test_voice_webhook.by_dialled_number"
    sent = parameters(await post(VOICE))
    start = {
        "event": "start",
        "start": {"streamSid": "MZ" + "1" * 32, "callSid": CALL_SID, "customParameters": sent},
    }
    parsed = parse_twilio_start(start)
    assert (parsed["from_number"], parsed["tenant_id"]) == (CALLER, "acme")
    assert parsed["droppedParameters"] == 0


async def test_a_resolver_that_raises_is_logged_with_its_traceback_and_the_call_goes_on(
    public, caplog
):
    public.VOICEFLOW_TENANT_RESOLVER = "tests.test_voice_webhook.raising"
    before = metric("voiceflow_internal_errors_total", where="tenant_resolver")
    response = await post(VOICE)
    assert response.status_code == 200
    assert parameters(response) == {"from_number": CALLER, "to_number": DIALLED}
    assert metric("voiceflow_internal_errors_total", where="tenant_resolver") == before + 1
    [record] = [r for r in caplog.records if "TENANT_RESOLVER raised" in r.getMessage()]
    assert record.exc_info and "the tenant database is down" in str(record.exc_info[1])
    assert CALL_SID in record.getMessage()


@pytest.mark.parametrize(
    "value",
    ["acme; DROP TABLE", "-acme", "a" * 65, "   ", "ac\nme", 42, b"acme", ["acme"], CALLER],
)
async def test_a_resolver_returning_junk_sends_no_tenant(public, caplog, value):
    public.VOICEFLOW_TENANT_RESOLVER = "tests.test_voice_webhook.junk"
    junk.value = value
    caplog.set_level(logging.WARNING, logger="voiceflow_channels")
    response = await post(VOICE)
    assert response.status_code == 200
    assert parameters(response) == {"from_number": CALLER, "to_number": DIALLED}
    assert "not a tenant id" in caplog.text
    assert CALLER not in caplog.text, "a number in the log is masked"


@pytest.mark.parametrize("resolver", ["slow_sync", "slow_async"])
async def test_a_resolver_past_its_timeout_is_logged_and_counted_and_the_call_goes_on(
    public, caplog, resolver
):
    global SLOW_ASYNC_CANCELLED
    SLOW_ASYNC_CANCELLED = asyncio.Event()
    SLOW_SYNC.clear()
    public.VOICEFLOW_TENANT_RESOLVER = f"tests.test_voice_webhook.{resolver}"
    public.VOICEFLOW_TENANT_RESOLVER_TIMEOUT_S = 1
    before = metric("voiceflow_tenant_resolver_timeouts_total")
    errors = metric("voiceflow_internal_errors_total", where="tenant_resolver")
    try:
        response = await post(VOICE)
    finally:
        SLOW_SYNC.set()
    assert response.status_code == 200
    assert parameters(response) == {"from_number": CALLER, "to_number": DIALLED}, "no tenant"
    assert metric("voiceflow_tenant_resolver_timeouts_total") == before + 1
    [record] = [r for r in caplog.records if "TENANT_RESOLVER took" in r.getMessage()]
    assert record.levelno == logging.WARNING and not record.exc_info
    assert record.getMessage() == (
        f"voiceflow VOICEFLOW_TENANT_RESOLVER took more than 1 s for callSid={CALL_SID} "
        "(VOICEFLOW_TENANT_RESOLVER_TIMEOUT_S); it goes on without a tenant"
    )
    assert resolver == "slow_sync" or SLOW_ASYNC_CANCELLED.is_set(), "an async one is cancelled"
    assert metric("voiceflow_internal_errors_total", where="tenant_resolver") == errors


@pytest.mark.parametrize("value", [None, ""])
async def test_a_resolver_may_say_no_tenant_quietly(public, caplog, value):
    public.VOICEFLOW_TENANT_RESOLVER = "tests.test_voice_webhook.junk"
    junk.value = value
    assert parameters(await post(VOICE)) == {"from_number": CALLER, "to_number": DIALLED}
    assert "TENANT_RESOLVER" not in caplog.text


async def test_a_tenant_id_is_stripped_as_the_start_parser_strips_it(public):
    public.VOICEFLOW_TENANT_RESOLVER = "tests.test_voice_webhook.junk"
    junk.value = "  acme  "
    assert parameters(await post(VOICE))["tenant_id"] == "acme"


@pytest.mark.parametrize("caller", ["", "Anonymous", "+1 555 123", "<script>", "+" + "1" * 30])
async def test_a_caller_the_start_would_not_keep_is_not_sent(public, caller):
    response = await post(VOICE, twilio_form(From=caller, To=caller))
    assert response.status_code == 200
    assert parameters(response) == {}


async def test_hostile_form_values_never_break_the_twiml(public):
    public.VOICEFLOW_TENANT_RESOLVER = "tests.test_voice_webhook.by_dialled_number"
    hostile = twilio_form(From='"/><Hangup/>', To="</Stream>&amp;", Extra="\x00\x01")
    response = await post(VOICE, hostile)
    assert response.status_code == 200
    assert [e.tag for e in ET.fromstring(response.content).iter()] == [
        "Response",
        "Connect",
        "Stream",
    ]


async def test_a_signed_call_is_answered_whatever_the_host_header_says(signed):
    url = "https://voice.example.com/twilio/voice"
    response = await post(VOICE, signed_url=url)  # Host: testserver, as a proxy may rewrite it
    assert response.status_code == 200
    assert b"wss://voice.example.com/twilio/stream" in response.content


async def test_the_signed_url_is_the_public_one_with_the_path_and_query(signed):
    url = "https://voice.example.com/twilio/voice?reconnect=1"
    response = await post(f"{VOICE}?reconnect=1", signed_url=url)
    assert response.status_code == 200
    assert b'action="https://voice.example.com/twilio/voice/after?reconnect=1"' in response.content
    # ... on a ws:// public URL, http://
    signed.VOICEFLOW_PUBLIC_URL = "ws://127.0.0.1:8000"
    assert (await post(VOICE, signed_url="http://127.0.0.1:8000/twilio/voice")).status_code == 200


@pytest.mark.parametrize(
    ("signed_url", "headers", "why"),
    [
        (None, {}, "missing X-Twilio-Signature"),
        ("http://testserver/twilio/voice", {}, "X-Twilio-Signature does not match"),
        ("https://testserver/twilio/voice", {}, "X-Twilio-Signature does not match"),
        ("https://voice.example.com/twilio/voice?x=1", {}, "X-Twilio-Signature does not match"),
        (None, {"X-Twilio-Signature": "bm9wZQ=="}, "X-Twilio-Signature does not match"),
    ],
    ids=["missing", "over-the-host-header", "host-header-https", "other-query", "garbage"],
)
@pytest.mark.parametrize("path", [VOICE, AFTER])
async def test_a_request_not_signed_over_the_public_url_is_refused(
    signed, caplog, path, signed_url, headers, why
):
    caplog.set_level(logging.INFO, logger="voiceflow_channels")
    before = metric("voiceflow_webhooks_refused_total", reason="signature")
    response = await post(path, signed_url=signed_url, **headers)
    assert response.status_code == 403
    assert response.content == b"forbidden\n"
    assert metric("voiceflow_webhooks_refused_total", reason="signature") == before + 1
    [refused] = [r.getMessage() for r in caplog.records if "refused webhook" in r.getMessage()]
    assert refused.startswith(f"voiceflow refused webhook {path} (403): {why}")
    assert TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("method", "path", "status"), [("post", VOICE, 403), ("post", AFTER, 403), ("get", VOICE, 405)]
)
async def test_a_refusal_is_logged_once_with_its_reason(signed, caplog, method, path, status):
    caplog.set_level(logging.DEBUG)
    response = await (post(path) if method == "post" else AsyncClient().get(path))
    assert response.status_code == status
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.name == "voiceflow_channels" and record.levelno == logging.WARNING
    assert record.getMessage().startswith(f"voiceflow refused webhook {path} ({status}): ")
    assert record.status_code == status


async def test_a_signature_over_other_form_values_is_refused(signed):
    url = "https://voice.example.com/twilio/voice"
    signature = RequestValidator(TOKEN).compute_signature(url, twilio_form())
    forged = twilio_form(To="+19005550100")
    client = AsyncClient(enforce_csrf_checks=True)
    response = await client.post(
        VOICE, urlencode(forged), FORM_TYPE, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 403


async def test_a_form_with_a_repeated_name_is_signed_as_twilio_signs_it(signed):
    url = "https://voice.example.com/twilio/voice"
    form = QueryDict(urlencode({**twilio_form(), "Tag": ["b", "a", "b"]}, doseq=True))
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    client = AsyncClient(enforce_csrf_checks=True)
    response = await client.post(
        VOICE, form.urlencode(), FORM_TYPE, headers={"X-Twilio-Signature": signature}
    )
    assert response.status_code == 200


@pytest.mark.parametrize("path", [VOICE, AFTER])
async def test_without_a_token_unsigned_requests_are_accepted(public, path):
    assert (await post(path)).status_code == 200


@pytest.mark.parametrize(
    ("form", "content_type"),
    [
        ({}, FORM_TYPE),
        (twilio_form(CallSid=""), FORM_TYPE),
        (twilio_form(CallSid="CA123"), FORM_TYPE),
        (twilio_form(CallSid="CA" + "0123456789ABCDEF" * 2), FORM_TYPE),
        (twilio_form(CallSid="CA" + "0" * 32 + "\n"), FORM_TYPE),
        (twilio_form(CallSid="MZ" + "0" * 32), FORM_TYPE),
        (twilio_form(), "application/json"),
        (twilio_form(), "multipart/form-data; boundary=x"),
        (twilio_form(), "text/plain"),
    ],
    ids=[
        "empty",
        "no-callsid",
        "short",
        "upper-hex",
        "newline",
        "not-a-call",
        "json",
        "multipart",
        "text",
    ],
)
@pytest.mark.parametrize("path", [VOICE, AFTER])
async def test_a_malformed_post_is_a_400_never_a_500(public, caplog, path, form, content_type):
    before = metric("voiceflow_webhooks_refused_total", reason="malformed")
    response = await post(path, form, content_type=content_type)
    assert response.status_code == 400
    assert metric("voiceflow_webhooks_refused_total", reason="malformed") == before + 1
    assert f"voiceflow refused webhook {path} (400): " in caplog.text


@pytest.mark.parametrize("query", ["reconnect=x", "reconnect=-1", "reconnect=1000", "reconnect="])
async def test_a_reconnect_count_that_is_not_one_is_a_400(public, query):
    assert (await post(f"{AFTER}?{query}")).status_code == 400


async def test_too_many_fields_are_a_400(public, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    form = {**twilio_form(), **{f"F{i}": "x" for i in range(20)}}
    assert (await post(VOICE, form)).status_code == 400


@pytest.mark.parametrize("method", ["get", "put", "delete", "head"])
@pytest.mark.parametrize("path", [VOICE, AFTER])
async def test_only_post_is_allowed(public, path, method):
    before = metric("voiceflow_webhooks_refused_total", reason="method")
    response = await getattr(AsyncClient(), method)(path)
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert metric("voiceflow_webhooks_refused_total", reason="method") == before + 1


async def test_without_a_public_url_the_webhook_says_which_setting_it_needs(flag_on):
    flag_on.VOICEFLOW_PUBLIC_URL = ""
    before = metric("voiceflow_webhooks_refused_total", reason="unavailable")
    response = await post(VOICE)
    assert response.status_code == 503
    assert response.content.startswith(b"VOICEFLOW_PUBLIC_URL is not set: set it to ")
    assert metric("voiceflow_webhooks_refused_total", reason="unavailable") == before + 1


async def test_with_the_flag_off_the_webhook_takes_no_calls(public):
    public.VOZ_FEATURE_VOICE_FLOW_A = "0"
    response = await post(VOICE)
    assert response.status_code == 503
    assert b"VOZ_FEATURE_VOICE_FLOW_A is off" in response.content


async def test_a_prefixed_mount_puts_the_action_under_the_same_prefix(public, settings):
    settings.ROOT_URLCONF = "tests.prefixed_urls"
    response = await post("/voice/twilio/voice")
    assert b'action="https://voice.example.com/voice/twilio/voice/after"' in response.content


# /twilio/voice/after: what the call decided.


async def test_after_a_hangup_the_call_hangs_up(public):
    await call_control.arecord_hangup(CALL_SID)
    before = metric("voiceflow_call_ends_total", how="hangup")
    response = await post(AFTER, twilio_form(CallStatus="in-progress"))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert response.content.decode() == voice_response_with("hangup")
    assert metric("voiceflow_call_ends_total", how="hangup") == before + 1


async def test_after_a_transfer_to_a_number_the_call_dials_it(public, caplog):
    caplog.set_level(logging.INFO, logger="voiceflow_channels")
    await call_control.arecord_transfer(CALL_SID, "+15557654321")
    response = await post(AFTER, twilio_form(CallStatus="in-progress"))
    assert response.content.decode() == voice_response_with("dial", "+15557654321")
    assert f"voiceflow action callSid={CALL_SID}: transfer to ********4321" in caplog.text
    assert "+15557654321" not in caplog.text


@pytest.mark.parametrize("caller_id", ["", "+15550002222"])
async def test_after_a_transfer_to_a_sip_uri_the_call_dials_a_sip_noun(public, caller_id):
    public.VOICEFLOW_TRANSFER_CALLER_ID = caller_id
    await call_control.arecord_transfer(CALL_SID, "sip:desk@pbx.example.com")
    response = await post(AFTER, twilio_form(CallStatus="in-progress"))
    dial = Dial(caller_id=caller_id or None)
    dial.sip("sip:desk@pbx.example.com")
    assert response.content.decode() == str(VoiceResponse().append(dial))


async def test_a_number_transfer_shows_the_configured_caller_id(public):
    public.VOICEFLOW_TRANSFER_CALLER_ID = "+15550002222"
    await call_control.arecord_transfer(CALL_SID, "+15557654321")
    response = await post(AFTER)
    assert response.content.decode() == str(
        VoiceResponse().append(Dial("+15557654321", caller_id="+15550002222"))
    )


async def test_with_no_decision_the_call_reconnects_up_to_the_budget_then_hangs_up(public):
    redirects = []
    path = AFTER
    for _ in range(3):
        answer = ET.fromstring((await post(path)).content)
        if answer[0].tag != "Redirect":
            break
        redirects.append(answer[0].text)
        # Twilio follows the Redirect to the webhook, whose action carries the count on.
        connect = ET.fromstring(
            (await post(answer[0].text.removeprefix("https://voice.example.com"))).content
        )[0]
        path = connect.get("action").removeprefix("https://voice.example.com")
    assert redirects == [
        "https://voice.example.com/twilio/voice?reconnect=1",
        "https://voice.example.com/twilio/voice?reconnect=2",
    ]
    assert answer[0].tag == "Hangup"
    assert path == "/twilio/voice/after?reconnect=2"


async def test_no_reconnects_allowed_means_a_hangup(public):
    public.VOICEFLOW_RECONNECTS = 0
    before = metric("voiceflow_call_ends_total", how="reconnects_spent")
    assert (await post(AFTER)).content.decode() == twiml.hangup()
    assert metric("voiceflow_call_ends_total", how="reconnects_spent") == before + 1


async def test_a_call_that_is_over_is_not_reconnected(public):
    response = await post(AFTER, twilio_form(CallStatus="completed"))
    assert response.content.decode() == twiml.hangup()


async def test_a_transfer_no_longer_allowed_is_not_dialled(public, caplog):
    await call_control.arecord_transfer(CALL_SID, "+15557654321")
    public.VOICEFLOW_TRANSFER_ALLOWLIST = []
    before = metric("voiceflow_call_control_failures_total", kind="bad_instruction")
    response = await post(AFTER)
    assert b"<Dial" not in response.content
    assert response.content.decode() == twiml.redirect(
        "https://voice.example.com/twilio/voice?reconnect=1"
    )
    assert metric("voiceflow_call_control_failures_total", kind="bad_instruction") == before + 1
    assert "not on VOICEFLOW_TRANSFER_ALLOWLIST" in caplog.text


@pytest.mark.parametrize(
    "planted",
    [
        {"type": "voiceflow.call.transfer", "to": "+1900 555"},
        {"type": "voiceflow.wait.start"},
        "hangup",
        42,
    ],
)
async def test_whatever_else_the_cache_holds_is_never_dialled(public, planted):
    from django.core.cache import caches

    await caches["default"].aset(f"voiceflow.call.{CALL_SID}.end", planted)
    response = await post(AFTER)
    assert response.status_code == 200
    assert ET.fromstring(response.content)[0].tag == "Redirect"


# The decision crosses processes through a shared cache; a cache that fails never fails the call.


def redis_cache(url: str) -> dict:
    return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": url}}


async def test_a_transfer_decided_in_another_process_is_dialled_here(public, redis):
    public.CACHES = redis_cache(redis.url)
    code = (
        "import asyncio\n"
        "from voiceflow_channels import call_control\n"
        f"asyncio.run(call_control.arecord_transfer({CALL_SID!r}, 'sip:desk@pbx.example.com'))\n"
    )
    done = await asyncio.to_thread(django_shell, code, REDIS_URL=redis.url)
    assert done.returncode == 0, done.stderr
    response = await post(AFTER)
    dial = Dial()
    dial.sip("sip:desk@pbx.example.com")
    assert response.content.decode() == str(VoiceResponse().append(dial))


async def test_a_cache_that_fails_is_logged_counted_and_the_call_reconnects(public, caplog):
    public.CACHES = redis_cache(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    before = metric("voiceflow_call_control_failures_total", kind="cache")
    response = await post(AFTER)
    assert response.status_code == 200
    assert response.content.decode() == twiml.redirect(
        "https://voice.example.com/twilio/voice?reconnect=1"
    )
    assert metric("voiceflow_call_control_failures_total", kind="cache") == before + 1
    assert "VOICEFLOW_CALL_CONTROL_CACHE='default' failed (ConnectionError: " in caplog.text
    # ... and the budget, kept in the signed URL, still ends it.
    response = await post(f"{AFTER}?reconnect=2")
    assert response.content.decode() == twiml.hangup()
