"""HEALTHCHECK of docker/Dockerfile: healthy while MODEL_NAME has an AVAILABLE version.

It asks upstream's REST model-status API (GET /v1/models/NAME), the answer a
client would get, so a container whose model failed to load, or whose last
version was removed from the volume, turns unhealthy rather than merely
"running". Standard library only: the runtime image has no curl.

Environment (the entrypoint's): MODEL_NAME (default "model"), PORT (REST
port, default 8501). Exit status 0 when healthy, 1 otherwise, with one line
saying why.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request

TIMEOUT_SECONDS = 5.0


def check(host: str, port: str, model_name: str) -> tuple[bool, str]:
    url = f"http://{host}:{port}/v1/models/{urllib.parse.quote(model_name, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            body = json.load(response)
    except urllib.error.HTTPError as error:
        return False, f"{url}: HTTP {error.code} {error.read()[:200]!r}"
    except (OSError, ValueError) as error:
        return False, f"{url}: {error}"
    states = {
        str(status.get("version")): status.get("state")
        for status in body.get("model_version_status", [])
    }
    available = sorted(v for v, state in states.items() if state == "AVAILABLE")
    if available:
        return True, f"{url}: version(s) {', '.join(available)} AVAILABLE"
    return False, f"{url}: no AVAILABLE version (states: {states or 'none'})"


def main() -> int:
    healthy, why = check(
        "127.0.0.1",
        os.environ.get("PORT", "8501"),
        os.environ.get("MODEL_NAME", "model"),
    )
    print(("healthy: " if healthy else "unhealthy: ") + why)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
