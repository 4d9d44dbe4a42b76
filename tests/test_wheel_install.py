"""The path users follow, from the wheel: a new virtualenv, `django-admin startproject`, the
settings and asgi.py exactly as the README's "Add it to your project" shows them (taken from the
README, so the test breaks when the README drifts), then check, selftest and a call under daphne."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import ROOT, STARTUP_SECONDS, end_process, free_port

pytestmark = pytest.mark.slow_install

SECTION = "## Add it to your project"
# Building and installing fetch from the package index; a cold cache is slow.
INSTALL_SECONDS = 600
COMMAND_SECONDS = 120


def readme_section() -> str:
    readme = (ROOT / "README.md").read_text()
    start = readme.index(SECTION)
    return readme[start : readme.index("\n## ", start + len(SECTION))]


def readme_files(section: str) -> dict[str, str]:
    """The section's python blocks split at their `# <name>.py` lines, joined per file name."""
    files: dict[str, str] = {}
    for block in re.findall(r"^```python\n(.*?)^```", section, re.S | re.M):
        for name, code in re.findall(r"^# (\w+\.py)\n(.*?)(?=^# \w+\.py\n|\Z)", block, re.S | re.M):
            files[name] = files.get(name, "") + code
    return files


def user_env() -> dict[str, str]:
    """This environment without what points into this checkout (pytest-django's settings
    module, our venv), plus the flag the README's user sets."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in {"DJANGO_SETTINGS_MODULE", "PYTHONPATH", "VIRTUAL_ENV"}
    }
    return {**env, "VOZ_FEATURE_VOICE_FLOW_A": "1", "PYTHONUNBUFFERED": "1"}


def run(args: list[str | Path], cwd: Path, timeout: float = COMMAND_SECONDS) -> None:
    done = subprocess.run(
        args, cwd=cwd, env=user_env(), capture_output=True, text=True, timeout=timeout
    )
    command = shlex.join(map(str, args))
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}{done.stderr}"


def wait_for_line(log: Path, proc: subprocess.Popen, pattern: str, timeout: float) -> str:
    """The first line of `log` matching `pattern`, once `proc` has written it."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = log.read_text()
        if found := regex.search(text):
            return text[text.rfind("\n", 0, found.start()) + 1 : text.find("\n", found.end())]
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"daphne never logged {pattern!r}:\n{text}")
        time.sleep(0.1)


def test_the_readme_path_works_from_the_wheel(tmp_path):
    section = readme_section()
    files = readme_files(section)
    # `[..., "channels", ...]` in the README means "after your apps": startproject's list.
    settings, swapped = re.subn(
        r"^INSTALLED_APPS = \[\.\.\., ", "INSTALLED_APPS += [", files["settings.py"], flags=re.M
    )
    assert swapped == 1, "the README's INSTALLED_APPS line changed: update how this test applies it"
    assert "LOGGING = " in settings, "the README no longer shows how to see the app's INFO lines"
    daphne_args = shlex.split(re.search(r"^daphne .*$", section, re.M).group())
    assert daphne_args[-1] == "mysite.asgi:application"

    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", tmp_path, "."],
        cwd=ROOT,
        timeout=INSTALL_SECONDS,
    )
    (wheel,) = tmp_path.glob("voiceflow_channels-*.whl")
    run([sys.executable, "-m", "venv", tmp_path / "venv"], cwd=tmp_path)
    bin_dir = tmp_path / "venv" / "bin"
    python = bin_dir / "python"
    run([python, "-m", "pip", "install", "--quiet", wheel], cwd=tmp_path, timeout=INSTALL_SECONDS)

    run([bin_dir / "django-admin", "startproject", "mysite"], cwd=tmp_path)
    project = tmp_path / "mysite"
    with (project / "mysite" / "settings.py").open("a") as settings_file:
        settings_file.write("\n" + settings)
    (project / "mysite" / "asgi.py").write_text(files["asgi.py"])
    run([python, "manage.py", "check"], cwd=project)
    run([python, "manage.py", "voiceflow_selftest"], cwd=project)

    port = free_port()
    log = tmp_path / "daphne.log"
    with log.open("w") as stderr:
        daphne = subprocess.Popen(
            [bin_dir / "daphne", "-b", "127.0.0.1", "-p", str(port), *daphne_args[1:]],
            cwd=project,
            env=user_env(),
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        listening = rf"Listening on TCP address 127\.0\.0\.1:{port}"
        wait_for_line(log, daphne, listening, STARTUP_SECONDS)
        url = f"ws://127.0.0.1:{port}/twilio/stream"
        run([python, "manage.py", "voiceflow_callsim", "--url", url, "--seconds", "1"], cwd=project)
        # The logger's name in the line: the README's handler wrote it, not daphne's root one.
        summary = r" INFO voiceflow_channels voiceflow call ended \(stop\) callSid=CA.* frames=50 "
        wait_for_line(log, daphne, summary, 10)
    finally:
        end_process(daphne)
    assert log.read_text().count("call ended") == 1, "the summary was logged twice"
