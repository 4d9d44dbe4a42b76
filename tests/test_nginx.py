"""Behind nginx: the README's nginx block, run as written in front of a real daphne, terminating
TLS with a self-signed certificate; signed upgrades pass through it, unsigned ones do not, and
the voice webhook's signed POST is answered through it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import websockets
from twilio.request_validator import RequestValidator
from websockets.exceptions import InvalidStatus

from tests.servers import ROOT, STARTUP_SECONDS, Daphne, end_process, free_port
from voiceflow_channels.signature import compute_signature
from voiceflow_channels.testing import SimulatedCall

TOKEN = "nginx-test-token-0123456789abcdef"
HEADING = "## Behind nginx (TLS)"


def readme_snippet() -> str:
    """The one fenced nginx block in the README's nginx section."""
    readme = (ROOT / "README.md").read_text()
    section = re.search(rf"^{re.escape(HEADING)}\n(.*?)^## ", readme, re.DOTALL | re.MULTILINE)
    assert section, f"README.md has no {HEADING!r} section"
    [snippet] = re.findall(r"^```nginx\n(.*?)^```", section.group(1), re.DOTALL | re.MULTILINE)
    return snippet


def substitute(text: str, replacements: dict[str, str]) -> str:
    """Replace each placeholder, which must appear exactly once: a README edit that drops or
    repeats one fails here, not as a puzzling nginx error."""
    for placeholder, value in replacements.items():
        assert text.count(placeholder) == 1, f"README nginx block: {placeholder!r} not found once"
        text = text.replace(placeholder, value)
    return text


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for `localhost`, made with the openssl CLI."""
    cert, key = directory / "localhost.pem", directory / "localhost.key"
    args = (
        "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1"
        " -subj /CN=localhost -addext subjectAltName=DNS:localhost"
    )
    subprocess.run(
        ["openssl", *args.split(), "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def main_config(server_block: str, prefix: Path) -> str:
    """A minimal nginx.conf around `server_block`, writing nothing outside `prefix`."""
    # Root (as in CI) would otherwise hand the workers to `nobody`, who cannot enter tmp_path.
    user = "user root;\n" if os.geteuid() == 0 else ""
    # The compiled-in temp paths are absolute (/var/lib/nginx/...): -p does not move them.
    temp_paths = "".join(
        f"{kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}daemon off;\npid {prefix / 'nginx.pid'};\nerror_log {prefix / 'error.log'};\n"
        f"events {{}}\nhttp {{\naccess_log {prefix / 'access.log'};\n{temp_paths}"
        f"{server_block}}}\n"
    )


def accepts_tls(port: int, ctx: ssl.SSLContext) -> bool:
    """True once a TLS handshake with 127.0.0.1:`port` succeeds."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=1) as raw,
            ctx.wrap_socket(raw, server_hostname="localhost"),
        ):
            return True
    except OSError:
        return False


@dataclass
class Proxy:
    """nginx in front of daphne, and what a client needs to reach the app through it."""

    daphne: Daphne
    port: int
    ssl: ssl.SSLContext

    @property
    def url(self) -> str:
        return f"wss://localhost:{self.port}/twilio/stream"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    # Debian installs nginx in /usr/sbin, which is not on an ordinary user's PATH.
    binary = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing in CI: .ci/run must install it")
        pytest.skip("nginx is not installed (apt-get install nginx)")
    prefix = tmp_path_factory.mktemp("nginx")
    cert, key = self_signed(prefix)
    ctx = ssl.create_default_context(cafile=cert)
    port = free_port()
    # Whatever fails after a server starts (a README edit, nginx refusing its config), it stops.
    with ExitStack() as servers:
        daphne = Daphne(
            VOZ_FEATURE_VOICE_FLOW_A="1",
            TWILIO_AUTH_TOKEN=TOKEN,
            VOICEFLOW_PUBLIC_URL=f"wss://localhost:{port}",
        )
        servers.callback(daphne.stop)
        server_block = substitute(
            readme_snippet(),
            {
                "listen 443 ssl;": f"listen 127.0.0.1:{port} ssl;",
                "server_name voice.example.com;": "server_name localhost;",
                "/etc/ssl/voice.pem": str(cert),
                "/etc/ssl/voice.key": str(key),
                "http://127.0.0.1:8000": f"http://127.0.0.1:{daphne.port}",
            },
        )
        conf, error_log = prefix / "nginx.conf", prefix / "error.log"
        conf.write_text(main_config(server_block, prefix))
        # -e: nginx opens its compiled-in error log before it reads the config's error_log.
        nginx = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf), "-e", str(error_log)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        servers.callback(end_process, nginx)
        deadline = time.monotonic() + STARTUP_SECONDS
        while not accepts_tls(port, ctx):
            if nginx.poll() is not None or time.monotonic() > deadline:
                log = error_log.read_text() if error_log.exists() else ""
                pytest.fail(f"nginx did not start on 127.0.0.1:{port}:\n{log}")
            time.sleep(0.05)
        yield Proxy(daphne, port, ctx)


async def test_a_signed_call_through_nginx_is_accepted_and_completes(proxy):
    call = SimulatedCall(n=51)
    signature = compute_signature(TOKEN, proxy.url)
    async with websockets.connect(
        proxy.url, ssl=proxy.ssl, additional_headers={"X-Twilio-Signature": signature}
    ) as ws:
        for frame in call.whole_call(100, mark_every=50, dtmf_every=50):
            await ws.send(frame)
        await ws.wait_closed()
    assert ws.close_code == 1000
    [summary] = proxy.daphne.wait_for(rf"call ended \(stop\) callSid={call.call_sid}")
    assert "frames=100 bytes=16000 gaps=0 out_of_order=0 marks=2 dtmf=2" in summary
    assert "malformed=0" in summary


@pytest.mark.parametrize(
    ("signature", "why"),
    [
        (None, "missing X-Twilio-Signature"),
        (
            compute_signature(TOKEN, "wss://voice.example.com/twilio/stream"),
            r"X-Twilio-Signature does not match wss://localhost:\d+/twilio/stream",
        ),
    ],
    ids=["unsigned", "signed-for-another-url"],
)
async def test_an_unsigned_or_wrongly_signed_upgrade_is_refused(proxy, signature, why):
    headers = {"X-Twilio-Signature": signature} if signature else {}
    with pytest.raises(InvalidStatus) as refused:
        async with websockets.connect(proxy.url, ssl=proxy.ssl, additional_headers=headers):
            pass
    assert refused.value.response.status_code == 403
    proxy.daphne.wait_for(rf"voiceflow refused upgrade to /twilio/stream: {why}")


def test_a_signed_voice_webhook_post_through_nginx_is_answered_with_the_stream(proxy):
    url = f"https://localhost:{proxy.port}/twilio/voice"
    form = {"CallSid": "CA" + "5" * 32, "From": "+15551234567", "To": "+15550001111"}
    request = urllib.request.Request(
        url,
        data=urlencode(form).encode(),
        headers={"X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(url, form)},
    )
    with urllib.request.urlopen(request, context=proxy.ssl, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/xml"
        body = response.read().decode()
    assert f'<Stream url="{proxy.url}">' in body
    assert f'<Connect action="{url}/after">' in body
