"""`python -m hub_common.healthcheck [URL]`: the container image's HEALTHCHECK, standard library only.

One image runs every service, so the check finds out which one this container runs from the command of PID 1
and probes its `GET /ready` on the port its `<PREFIX>_PORT` variable gives (the same environment the service
read). Ready is what `depends_on: condition: service_healthy` must wait for: the service has connected to its
dependencies. Exit 0: healthy (or a one-shot command such as hub-migrate, which serves nothing); exit 1: not.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from hub_common.services import ServiceInfo, service_in_command

TIMEOUT_S = 3.0


def ready_url(service: ServiceInfo, environ: Mapping[str, str]) -> str:
    port = environ.get(service.port_env, "").strip() or str(service.default_port)
    return f"http://127.0.0.1:{port}/ready"


def pid1_command(proc: Path = Path("/proc/1/cmdline")) -> list[str]:
    try:
        raw = proc.read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def probe(url: str, *, timeout_s: float = TIMEOUT_S) -> str | None:
    """None when `url` answers 200, else why not (one line)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - loopback URL built above
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"GET {url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"GET {url} failed: {exc}"
    return None if status == 200 else f"GET {url} answered {status}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        url = args[0]
    else:
        command = pid1_command()
        service = service_in_command(command)
        if service is None:
            print(f"healthcheck: no Hub service in the container's command {command!r}; nothing to probe")
            return 0
        url = ready_url(service, os.environ)
    problem = probe(url)
    if problem is not None:
        print(f"healthcheck: {problem}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
