"""Serve the example project: daphne (or uvicorn) with the voice edge's settings and the drain on
SIGTERM.

python -m example_project [--server daphne|uvicorn] [-b 127.0.0.1] [-p 8000] [daphne options]
"""

from __future__ import annotations

import sys

from voiceflow_channels.server import serve

APPLICATION = "example_project.asgi:application"

if __name__ == "__main__":
    serve(APPLICATION, sys.argv[1:])
