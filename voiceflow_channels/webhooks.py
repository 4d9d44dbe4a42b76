"""Twilio's voice webhook, `POST /twilio/voice`, and its `<Connect action>`,
`POST /twilio/voice/after`: each answers TwiML that `twiml` builds.

Both pass one door first (`twilio_webhook`): POST only, Twilio's form, signed over the public
URL when TWILIO_AUTH_TOKEN is set, a CallSid. What it refuses is logged and counted, never a 500.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, QueryDict
from django.urls import reverse
from django.utils.log import log_response
from django.views.decorators.csrf import csrf_exempt

from . import call_control, conf, twiml
from .destinations import check_destination, masked
from .layer_messages import CallHangup, CallTransfer
from .metrics import (
    CALL_CONTROL_FAILURES,
    CALL_ENDS,
    CALLS_ANSWERED,
    INTERNAL_ERRORS,
    TENANT_RESOLVER_TIMEOUTS,
    WEBHOOKS_REFUSED,
)
from .routing import stream_path
from .signature import is_valid_form_signature
from .twilio_events import FROM_KEYS, TENANT_KEYS, TO_KEYS, clean_phone, clean_tenant_id, mask_phone

log = logging.getLogger("voiceflow_channels")

FORM_TYPE = "application/x-www-form-urlencoded"
_CALL_SID_RE = re.compile(r"CA[0-9a-f]{32}")
# How many times the call was already sent back to the webhook: carried in the URLs Twilio
# requests (and signs), so it needs no cache and survives one that fails.
RECONNECT_PARAM = "reconnect"
_RECONNECT_RE = re.compile(r"[0-9]{1,3}")
# CallStatus of a call that is over: whatever the action answers, nothing more will happen.
CALL_OVER = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
HTTP_SCHEMES = {"wss": "https", "ws": "http"}


@dataclass(frozen=True, slots=True)
class Webhook:
    """A request the door let in: its CallSid, its reconnect count and its form."""

    call_sid: str
    reconnect: int
    form: QueryDict


class Refused(Exception):
    """A webhook request answered with an error `status`: `reason` is the metric's label, `why`
    what the log line and the response say."""

    def __init__(self, status: int, reason: str, why: str) -> None:
        super().__init__(why)
        self.status, self.reason, self.why = status, reason, why


def twilio_webhook(
    view: Callable[[HttpRequest, Webhook], Awaitable[str]],
) -> Callable[[HttpRequest], Coroutine[Any, Any, HttpResponse]]:
    """The door of a view answering Twilio (django-anymail's shape): CSRF-exempt (Twilio sends no
    token; its signature is the proof), then `view(request, webhook)` for the TwiML, or the
    refusal, logged and counted."""

    @csrf_exempt
    @functools.wraps(view)
    async def door(request: HttpRequest) -> HttpResponse:
        try:
            hook = _admit(request)
            return HttpResponse(await view(request, hook), content_type="text/xml")
        except Refused as refused:
            WEBHOOKS_REFUSED.labels(refused.reason).inc()
            if refused.status == 405:
                response: HttpResponse = HttpResponseNotAllowed(["POST"], content_type="text/plain")
            else:
                response = HttpResponse(
                    f"{refused.why}\n" if refused.status != 403 else "forbidden\n",
                    status=refused.status,
                    content_type="text/plain",
                )
            # Logged here, once, with the reason: Django's request logger then skips it (it
            # would add a second line, "Forbidden: /twilio/voice", that says less).
            log_response(
                "voiceflow refused webhook %s (%d): %s",
                request.path,
                refused.status,
                refused.why,
                response=response,
                request=request,
                logger=log,
                level="warning",
            )
            return response

    return door


@twilio_webhook
async def voice(request: HttpRequest, hook: Webhook) -> str:
    """A call comes in: connect it to a stream, with the caller's number and the tenant as
    `<Parameter>`s the stream's start keeps; Twilio requests `/twilio/voice/after` when it ends."""
    if not conf.voz_feature_voice_flow_a():
        # Twilio then runs the number's fallback URL, if it has one: the rollback path.
        raise Refused(503, "unavailable", "VOZ_FEATURE_VOICE_FLOW_A is off: no calls taken")
    parameters = {}
    caller = clean_phone(hook.form.get("From"))
    if caller:
        parameters[FROM_KEYS[0]] = caller
    called = clean_phone(hook.form.get("To"))
    if called:
        parameters[TO_KEYS[0]] = called
    tenant = await _tenant(request, hook.call_sid)
    if tenant:
        parameters[TENANT_KEYS[0]] = tenant
    stream_url = f"{conf.public_url()}{stream_path()}"
    action_url = _public_http_url(reverse("voiceflow-voice-after"), hook.reconnect)
    CALLS_ANSWERED.inc()
    log.info(
        "voiceflow answered callSid=%s from=%s tenant=%s reconnect=%d",
        hook.call_sid,
        mask_phone(caller),
        tenant or "-",
        hook.reconnect,
    )
    return twiml.connect_stream(stream_url, action_url, parameters)


@twilio_webhook
async def after(request: HttpRequest, hook: Webhook) -> str:
    """The call's stream ended: hang up or transfer as the call decided, or, with no decision
    (a drain past its deadline, a crash, a lost connection), send the call back to the webhook
    for a new stream on a live process, at most VOICEFLOW_RECONNECTS times."""
    status = hook.form.get("CallStatus", "")
    if status in CALL_OVER:
        return _ends(hook, "call_over", twiml.hangup(), f"call over ({status})")
    end = await _decided_end(hook.call_sid)
    if isinstance(end, CallHangup):
        return _ends(hook, "hangup", twiml.hangup(), "hangup")
    if isinstance(end, CallTransfer):
        answer = twiml.dial(end.to, conf.transfer_caller_id())
        return _ends(hook, "transfer", answer, f"transfer to {masked(end.to)}")
    budget = conf.reconnects()
    if hook.reconnect < budget:
        answer = twiml.redirect(_public_http_url(reverse("voiceflow-voice"), hook.reconnect + 1))
        return _ends(hook, "reconnect", answer, f"reconnect {hook.reconnect + 1} of {budget}")
    return _ends(hook, "reconnects_spent", twiml.hangup(), f"reconnects spent ({budget}): hangup")


async def _decided_end(call_sid: str) -> CallHangup | CallTransfer | None:
    """The end the call decided, if it can be honoured. A cache that fails cannot say: that call
    is taken as one with no decision, so it reconnects (its budget is in the signed URL, not in
    the cache: still bounded) rather than hanging up on a caller a live process can serve, and
    never meets Twilio's "application error". A transfer the cache holds is checked against the
    allowlist again: the cache is one more place a destination could be planted."""
    try:
        end = await call_control.aread_end(call_sid)
        if isinstance(end, CallTransfer):
            check_destination(end.to, conf.transfer_allowlist())
    except ValueError as exc:  # BadInstruction, or a transfer the allowlist refuses
        CALL_CONTROL_FAILURES.labels("bad_instruction").inc()
        log.error("voiceflow ignored the recorded end of callSid=%s: %s", call_sid, exc)
        return None
    except Exception as exc:
        CALL_CONTROL_FAILURES.labels("cache").inc()
        log.error(
            "voiceflow callSid=%s: VOICEFLOW_CALL_CONTROL_CACHE=%r failed (%s: %s); answered as a "
            "call with no decision",
            call_sid,
            conf.call_control_cache(),
            type(exc).__name__,
            exc,
        )
        return None
    return end


def _ends(hook: Webhook, how: str, answer: str, said: str) -> str:
    CALL_ENDS.labels(how).inc()
    log.info("voiceflow action callSid=%s: %s", hook.call_sid, said)
    return answer


async def _tenant(request: HttpRequest, call_sid: str) -> str | None:
    """The tenant VOICEFLOW_TENANT_RESOLVER gives the call, if the stream's start will keep it;
    a resolver that raises, returns junk or takes more than VOICEFLOW_TENANT_RESOLVER_TIMEOUT_S
    is logged and counted, and the call goes on without a tenant: Twilio gives the whole webhook
    15 s before the caller hears an application error."""
    timeout_s = conf.tenant_resolver_timeout_s()
    deadline = asyncio.timeout(timeout_s)
    try:
        resolver = conf.tenant_resolver()
        if resolver is None:
            return None
        async with deadline:
            if iscoroutinefunction(resolver):
                value = await resolver(request)  # cancelled at the deadline
            else:
                # In a thread, as Django runs sync code from async: the resolver may query the
                # DB. Past the deadline its thread runs on (Python cannot stop one), unawaited.
                value = await sync_to_async(resolver)(request)
    except Exception:
        if deadline.expired():
            TENANT_RESOLVER_TIMEOUTS.inc()
            log.warning(
                "voiceflow VOICEFLOW_TENANT_RESOLVER took more than %d s for callSid=%s "
                "(VOICEFLOW_TENANT_RESOLVER_TIMEOUT_S); it goes on without a tenant",
                timeout_s,
                call_sid,
            )
            return None
        INTERNAL_ERRORS.labels("tenant_resolver").inc()
        log.exception(
            "voiceflow VOICEFLOW_TENANT_RESOLVER raised for callSid=%s; it goes on without a "
            "tenant",
            call_sid,
        )
        return None
    limits = conf.limits()
    tenant = clean_tenant_id(value, min(limits.max_tenant_chars, limits.max_parameter_value_chars))
    if tenant is None and value not in (None, ""):
        shown = mask_phone(value[:64]) if isinstance(value, str) else type(value).__name__
        log.warning(
            "voiceflow VOICEFLOW_TENANT_RESOLVER returned %s for callSid=%s: not a tenant id "
            "(letters, digits and _.- up to VOICEFLOW_MAX_TENANT_CHARS); it goes on without one",
            shown,
            call_sid,
        )
    return tenant


def _admit(request: HttpRequest) -> Webhook:
    """The request as a Webhook, or Refused: 405 not a POST, 503 no VOICEFLOW_PUBLIC_URL to
    build URLs on, 400 not Twilio's form, 403 not signed by Twilio (with a token set)."""
    if request.method != "POST":
        raise Refused(405, "method", f"{request.method} is not POST")
    if not conf.public_url():
        raise Refused(
            503,
            "unavailable",
            "VOICEFLOW_PUBLIC_URL is not set: set it to the public base URL Twilio connects to, "
            "e.g. wss://voice.example.com",
        )
    if request.content_type != FORM_TYPE:
        raise Refused(400, "malformed", f"the body is {request.content_type!r}, not {FORM_TYPE}")
    try:
        form = request.POST
    except SuspiciousOperation as exc:  # too many fields, too large
        raise Refused(400, "malformed", f"the form cannot be read: {exc}") from None
    _check_signature(request, form)
    call_sid = form.get("CallSid", "")
    if not _CALL_SID_RE.fullmatch(call_sid):
        raise Refused(400, "malformed", "no CallSid of CA and 32 hex digits")
    reconnect = request.GET.get(RECONNECT_PARAM, "0")
    if not _RECONNECT_RE.fullmatch(reconnect):
        raise Refused(400, "malformed", f"?{RECONNECT_PARAM}= is not a count")
    return Webhook(call_sid, int(reconnect), form)


def _check_signature(request: HttpRequest, form: QueryDict) -> None:
    """Twilio's signature for a POST, over the URL Twilio requested: the public one, never the
    Host header (a proxy rewrites it)."""
    token = conf.twilio_auth_token()
    if not token:
        return  # as for upgrades: accepted; the router warns at start, the deploy check too
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise Refused(403, "signature", "missing X-Twilio-Signature")
    url = _public_http_url(request.get_full_path())
    if not is_valid_form_signature(token, url, dict(form.lists()), signature):
        raise Refused(403, "signature", f"X-Twilio-Signature does not match {url}")


def _public_http_url(path: str, reconnect: int | None = None) -> str:
    """`path` on the public host as Twilio requests it: VOICEFLOW_PUBLIC_URL with https for wss
    (http for ws), and the reconnect count when there is one."""
    scheme, separator, host = conf.public_url().partition("://")
    query = f"?{RECONNECT_PARAM}={reconnect}" if reconnect else ""
    return f"{HTTP_SCHEMES.get(scheme, scheme)}{separator}{host}{path}{query}"
