"""Serve the example project: daphne with the voice edge's settings and the drain on SIGTERM.

python -m example_project [daphne options, e.g. -b 127.0.0.1 -p 8000]
"""

from __future__ import annotations

import sys

from voiceflow_channels.server import serve

APPLICATION = "example_project.asgi:application"

if __name__ == "__main__":
    serve(APPLICATION, sys.argv[1:])
