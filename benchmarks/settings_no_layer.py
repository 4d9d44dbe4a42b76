"""The example project with no channel layer: the baseline for what the layer costs."""

from example_project.settings import *  # noqa: F403

CHANNEL_LAYERS: dict = {}
