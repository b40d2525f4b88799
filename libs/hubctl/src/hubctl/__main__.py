"""hubctl: the SRE command line. Every command takes `--json`; connection facts come from the environment."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from hubctl.cli import invoke
from hubctl.context import HubctlSettings, load_env_file

# Each module exposes `register(subparsers)`, declaring its commands with `hubctl.cli.command`.
COMMAND_MODULES = ("health", "topics", "tx", "trace", "keys", "stats", "db", "webhooks", "dlq", "reconcile", "recovery")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubctl", description="Integration Hub SRE tool (source .hub/env first)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"hubctl.commands.{name}").register(sub)
    return parser


def run(argv: Sequence[str] | None, settings: HubctlSettings) -> int:
    """Parse `argv` and run the command through the one wrapper that turns failures into one line."""
    args = build_parser().parse_args(argv)
    return invoke(args.handler, args, settings)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Client libraries log every failed connect; hubctl reports failures itself, once, in plain words.
    logging.basicConfig(level=logging.CRITICAL)
    load_env_file(Path(os.environ.get("HUB_ENV_FILE", ".hub/env")))
    try:
        settings = HubctlSettings()
    except ValidationError as exc:
        print(f"hubctl: invalid environment: {exc}", file=sys.stderr)
        return 2
    return invoke(args.handler, args, settings)


if __name__ == "__main__":
    sys.exit(main())
