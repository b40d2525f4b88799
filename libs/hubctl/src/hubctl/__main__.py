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

from hubctl.context import HubctlSettings, load_env_file

# Each module exposes `register(subparsers)`; the handler it sets receives (args, settings) -> exit code.
COMMAND_MODULES = ("health", "topics", "tx", "keys", "stats", "webhooks", "dlq", "reconcile")


def build_parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(add_help=False)
    top.add_argument("--json", action="store_true", help="machine-readable output")
    # On subcommands the flag must not reset a `--json` given before the command name.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    parser = argparse.ArgumentParser(
        prog="hubctl", description="Integration Hub SRE tool (source .hub/env first)", parents=[top]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Subparsers inherit --json so it works before or after the command name.
    original = sub.add_parser

    def add_parser(name: str, **kwargs: object) -> argparse.ArgumentParser:
        parents = [*kwargs.pop("parents", []), common]  # type: ignore[misc]
        return original(name, parents=parents, **kwargs)  # type: ignore[arg-type]

    sub.add_parser = add_parser  # type: ignore[method-assign]
    for name in COMMAND_MODULES:
        importlib.import_module(f"hubctl.commands.{name}").register(sub)
    return parser


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
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
