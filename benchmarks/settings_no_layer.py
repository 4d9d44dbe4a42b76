"""The example project with no channel layer: the baseline for what the layer costs."""

from __future__ import annotations

from example_project.settings import *  # noqa: F403

CHANNEL_LAYERS: dict[str, dict[str, str]] = {}
