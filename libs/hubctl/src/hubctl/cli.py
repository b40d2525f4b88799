"""How every command is declared and run: `--json` on each, and one wrapper that turns failures into one line.

A handler takes (args, settings) and returns the exit code, directly or as a coroutine (run here, so commands do
not each start their own event loop). Whatever it raises that is not a bug ends as one `hubctl: ...` line on
stderr: a missing table, an unreachable database or broker, a refusal.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg
from aiokafka.errors import KafkaError

from hub_common.errors import InfrastructureError
from hubctl.context import HubctlSettings
from hubctl.errors import HubctlError

Handler = Callable[[argparse.Namespace, HubctlSettings], int | Coroutine[Any, Any, int]]
if TYPE_CHECKING:  # argparse's class is generic for type checkers only
    Subparsers: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction


def json_flag(parser: argparse.ArgumentParser) -> None:
    """`--json` on a subcommand too, without resetting one given earlier on the line."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def command(sub: Subparsers, name: str, *, help: str, handler: Handler) -> argparse.ArgumentParser:
    """A runnable command (`hubctl topics`, `hubctl tx show`): it takes `--json` wherever it is given."""
    parser = sub.add_parser(name, help=help, description=help)
    json_flag(parser)
    parser.set_defaults(handler=handler)
    return parser


def group(sub: Subparsers, name: str, *, help: str, dest: str) -> Subparsers:
    """A command group (`hubctl tx ...`) whose actions are declared with `command`."""
    parser = sub.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest=dest, required=True, metavar="ACTION")


def _fail(message: str) -> None:
    sys.stderr.write(f"hubctl: {message}\n")


def invoke(handler: Handler, args: argparse.Namespace, settings: HubctlSettings) -> int:
    try:
        result = handler(args, settings)
        return asyncio.run(result) if inspect.iscoroutine(result) else int(result)  # type: ignore[arg-type]
    except HubctlError as exc:
        _fail(exc.message)
        return exc.exit_code
    except asyncpg.UndefinedTableError as exc:
        _fail(f"{exc} (run `hub-migrate` against DATABASE_URL first)")
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        _fail(f"database error: {exc}")
    except InfrastructureError as exc:
        _fail(exc.message)
    except KafkaError as exc:
        _fail(f"Kafka error: {exc!r}")
    except (OSError, TimeoutError) as exc:
        _fail(f"{type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        _fail("interrupted")
        return 130
    return 1
