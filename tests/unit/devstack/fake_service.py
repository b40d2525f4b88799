"""A stand-in service for the launcher's tests: `python -m fake_service <PORT_ENV> <behaviour>`.

Behaviours: ok (GET /ready 200), crash (prints and exits 3), stubborn (ready, ignores SIGTERM),
never-ready (GET /ready 503).
"""

from __future__ import annotations

import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def main() -> None:
    port_env, behaviour = sys.argv[1], sys.argv[2]
    if behaviour == "crash":
        print("fake service: cannot load settings, giving up", flush=True)
        sys.exit(3)
    if behaviour == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    status = 503 if behaviour == "never-ready" else 200

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(status if self.path == "/ready" else 404)
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", int(os.environ[port_env])), Handler)
    print(f"fake service listening, KAFKA_BOOTSTRAP_SERVERS={os.environ.get('KAFKA_BOOTSTRAP_SERVERS')}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
