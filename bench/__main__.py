"""`make bench` / `python -m bench [gateway|ledger|dispatcher ...]`: run benchmarks against the real stack.

Each benchmark measures the Hub and a bare baseline in the same run on the same machine and prints the ratio;
targets are reported (met / not met), never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys

import uvloop

from bench.report import Report
from hub_common.secret_policy import DEV_MODE_ENV

BENCHMARKS = ("e2e", "gateway", "ledger", "dispatcher", "reconciler", "overload")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"any of {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--quick", action="store_true", help="shorter runs (smoke check of the harness)")
    args = parser.parse_args(argv)
    # Benchmarks run development settings (throwaway secrets, loopback http receivers), in this process and in
    # the services it starts: the secret policy's development switch (hub_common.secret_policy).
    os.environ.setdefault(DEV_MODE_ENV, "1")
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    # The load generator and the bare baselines run on the services' event loop (hub_common.service): a client
    # on asyncio's own loop added a millisecond or two of its own to every latency measured, and a baseline on
    # another loop than the service it is compared with would not be like for like.
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    reports: list[Report] = []
    for name in args.names or BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        print(f"== {name} ==", flush=True)
        report: Report = asyncio.run(module.run(quick=args.quick))
        report.print()
        reports.append(report)
    print("\n== summary ==")
    for report in reports:
        report.print_targets()
    return 0


if __name__ == "__main__":
    sys.exit(main())
