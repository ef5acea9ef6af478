"""``python -m bot.observability.probe``: the container's health check.

Asks ``/healthz`` on ``METRICS_LISTEN`` (read from the environment; a wildcard host is asked
on 127.0.0.1) and exits 0 on 200, 1 otherwise, printing the answer's first line. With
``METRICS_LISTEN`` empty there is nothing to ask: it says so and exits 0. Standard library only,
so a probe every 30 s costs a bare interpreter start.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

TIMEOUT = 10.0


def probe_url(listen: str) -> str:
    host, _, port = listen.strip().rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://{f'[{host}]' if ':' in host else host}:{int(port)}/healthz"


def main() -> int:
    listen = os.environ.get("METRICS_LISTEN", "").strip()
    if not listen:
        print("METRICS_LISTEN is empty: no health endpoint to ask")
        return 0
    url = probe_url(listen)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            print(response.read().decode("utf-8", "replace").splitlines()[0])
            return 0 if response.status == 200 else 1
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace").strip()
        print(body.splitlines()[0] if body else error)
        return 1
    except (OSError, ValueError) as error:
        print(f"{url}: {error}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
