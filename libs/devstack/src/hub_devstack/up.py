"""`hub-up` (`make up`): the whole Hub locally, demo traffic through it, `.hub/env` for everyone else.

Runs until Ctrl-C or SIGTERM, then stops every process it started. Exit 2: a tool is missing or a port is taken.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import aiohttp

from hub_devstack.demo import CURRENCY, PLAYERS, render_table, run_demo
from hub_devstack.errors import DevstackError, PortInUseError, ToolMissingError
from hub_devstack.facts import StackFacts
from hub_devstack.stack import RunningStack, exited, run_stack
from hub_devstack.stack_config import StackConfig, ports_from_env

SECURE_ENV = "HUB_SECURE"


class _Stop(Exception):
    """Raised from the SIGTERM handler so the `with` blocks unwind exactly as on Ctrl-C."""


def _on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


# Three lines an RGS developer can paste into `uv run python` (docs/integrating.md); the e2e tests run them.
CLIENT_EXAMPLE = (
    "from hub_client import HubClient, bet",
    "hub = HubClient.from_env()  # HUB_URL, HUB_CLIENT_ID, HUB_CLIENT_SECRET",
    'print(hub.submit(bet("hello-1", "demo-alice", 100, "EUR")))  # again: the same answer, replayed',
)


def usage(facts: StackFacts, env_file: Path) -> str:
    return "\n".join(
        [
            f"Connection facts written to {env_file}. In another shell:",
            f"  source {env_file}     # hubctl also reads it by itself; `set -a` first exports it to other programs",
            "  uv run hubctl health",
            "  uv run hubctl stats",
            '  psql "$DATABASE_URL" -c "SELECT ref_id, type, status, amount_cents FROM transactions"',
            '  curl -s "$OPERATOR_URL/_admin/players/demo-alice"',
            '  curl -s "$RGS_URL/_admin/webhooks"',
            f"Python client (docs/integrating.md): set -a; source {env_file}; set +a; uv run python, then",
            *(f"  {line}" for line in CLIENT_EXAMPLE),
            f"Gateway: {facts.hub_url} (client {facts.hub_client_id}). Logs: .hub/logs/. Ctrl-C stops everything.",
            *(
                [
                    f"A second RGS client, {facts.hub_second_client_id} (HUB_SECOND_CLIENT_ID/_SECRET): its "
                    "refIds, bets and refunds are its own (docs/contract.md section 1.2)."
                ]
                if facts.hub_second_client_id
                else []
            ),
        ]
    )


def _demo(facts: StackFacts) -> None:
    print("Stack is up; sending demo transactions...", flush=True)
    try:
        result = asyncio.run(run_demo(facts))
    except (aiohttp.ClientError, TimeoutError, ValueError, DevstackError) as exc:
        # The stack stays useful without the demo; say why it is missing and keep serving.
        print(f"hub-up: demo traffic failed ({type(exc).__name__}: {exc}); the stack keeps running", file=sys.stderr)
        return
    print(render_table(result))
    print()


def _serve(running: RunningStack, env_file: Path) -> int:
    facts = dataclasses.replace(running.facts, players=tuple(p for p, _ in PLAYERS), currency=CURRENCY)
    try:
        _demo(facts)
        facts.write_env(env_file)
        print(usage(facts, env_file), flush=True)
        while not (dead := exited(running.services)):
            time.sleep(1.0)
    except (KeyboardInterrupt, _Stop):
        print("\nhub-up: stopping...", flush=True)
        code = 0
    else:
        names = ", ".join(f"{s.spec.name} (exit {s.proc.returncode}, log {s.log})" for s in dead)
        print(f"hub-up: service stopped unexpectedly: {names}; stopping the stack", file=sys.stderr)
        code = 1
    # A second Ctrl-C must not cut the orderly shutdown short and leave processes behind.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub-up", description=__doc__)
    parser.add_argument("--state-dir", type=Path, default=Path(".hub"), help="logs and env file (default .hub)")
    parser.add_argument(
        "--secure",
        action="store_true",
        default=os.environ.get(SECURE_ENV, "").strip().lower() in ("1", "true", "yes", "on"),
        help=f"Kafka with TLS, one SCRAM principal per service and ACLs (also: {SECURE_ENV}=1; docs/security.md)",
    )
    args = parser.parse_args(argv)
    state_dir: Path = args.state_dir
    config = StackConfig(state_dir=state_dir, ports=ports_from_env(os.environ), secure_kafka=args.secure)
    signal.signal(signal.SIGTERM, _on_sigterm)
    kafka = "a secured Kafka (TLS, SCRAM, ACLs)" if args.secure else "Kafka"
    print(f"Starting {kafka}, PostgreSQL and the Hub services (first run may download the Kafka jars)...", flush=True)
    try:
        with run_stack(config) as running:
            code = _serve(running, state_dir / "env")
        print("hub-up: every process it started is stopped.", flush=True)
        return code
    except (ToolMissingError, PortInUseError) as exc:
        print(f"hub-up: {exc.message}", file=sys.stderr)
        return 2
    except DevstackError as exc:
        print(f"hub-up: {exc.message}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, _Stop):
        print("\nhub-up: interrupted during start-up; stopped.", flush=True)
        return 0


if __name__ == "__main__":
    sys.exit(main())
