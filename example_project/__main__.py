"""Serve the example project under daphne with explicit websocket size limits.

python -m example_project [daphne options, e.g. -b 127.0.0.1 -p 8000]
"""

from __future__ import annotations

import sys

from daphne.cli import CommandLineInterface

# Daphne's own limits end a connection; the app's smaller VOICEFLOW_MAX_MESSAGE_BYTES (16 KiB)
# drops an oversize frame first and lets the call go on.
MAX_WEBSOCKET_BYTES = 64 * 1024
APPLICATION = "example_project.asgi:application"


def main(argv: list[str]) -> None:
    limits = [
        f"--websocket-max-message-size={MAX_WEBSOCKET_BYTES}",
        f"--websocket-max-frame-size={MAX_WEBSOCKET_BYTES}",
    ]
    CommandLineInterface().run([*limits, *argv, APPLICATION])


if __name__ == "__main__":
    main(sys.argv[1:])
