"""hubctl in-process, exactly as the command line runs it (argv parsed, the one error wrapper), output captured."""

from __future__ import annotations

import asyncio
import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from typing import Any

import orjson

from hubctl.__main__ import run
from hubctl.context import HubctlSettings


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        assert self.code == 0, self.err
        return orjson.loads(self.out)


def hubctl_sync(settings: HubctlSettings, *argv: str) -> Ran:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = run(list(argv), settings)
    return Ran(code, out.getvalue(), err.getvalue())


async def hubctl(settings: HubctlSettings, *argv: str) -> Ran:
    # hubctl runs its own event loop (asyncio.run), so it goes to a thread.
    return await asyncio.to_thread(hubctl_sync, settings, *argv)


async def hubctl_json(settings: HubctlSettings, *argv: str) -> Any:
    """Run with `--json`; the command must succeed; returns what it printed, parsed."""
    return (await hubctl(settings, *argv, "--json")).json()
