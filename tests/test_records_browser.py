"""A call record's change page opened once in a real headless browser (Debian's chromium): the
picture lays out at its size, with its lanes, and the SVG's own styles paint its parts (the
played part green, the cut part red), with no script of ours and nothing fetched."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from tests.test_records import CHANGELIST, _leg
from voiceflow_channels.records import writer
from voiceflow_channels.testing.simulated_call import sid

# Run by the test only, after the page: what the browser laid out and painted.
PROBE = """<script>
const svg = document.querySelector("svg.voiceflow-timeline");
const box = svg.getBoundingClientRect();
const fill = (what) => getComputedStyle(svg.querySelector(what)).fill;
document.body.dataset.picture = JSON.stringify({
  width: box.width, height: box.height,
  lanes: svg.querySelectorAll("g.lane").length,
  played: [...svg.querySelectorAll("rect.played")].map((r) => r.getBBox().width),
  playedFill: fill("rect.played"), cutFill: fill("rect.cut"),
});
</script>"""


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI: .ci/run must install it")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


@pytest.mark.django_db
def test_the_change_page_draws_the_picture_in_a_real_browser(admin_client, tmp_path):
    browser = chromium()
    record = writer.save_leg(_leg(sid("CA", 20), sid("MZ", 20)))
    page = admin_client.get(f"{CHANGELIST}{record.pk}/change/").content.decode()
    assert "<script" not in re.search(r"<svg.*?</svg>", page, re.S).group(0)
    path = tmp_path / "change.html"
    path.write_text(page.replace("</body>", PROBE + "</body>"))
    run = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",  # CI runs as root
            "--disable-gpu",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r'data-picture="([^"]*)"', run.stdout)
    assert found, run.stderr[-2000:]
    picture = json.loads(found.group(1).replace("&quot;", '"'))
    assert (picture["width"], picture["height"]) == (960, 142)
    assert picture["lanes"] == 3
    assert picture["played"] and all(width > 50 for width in picture["played"])
    assert picture["playedFill"] == "rgb(22, 163, 74)"
    assert picture["cutFill"] == "rgb(252, 165, 165)"
