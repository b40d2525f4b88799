"""The Hub's runnable services: name, module, console script, settings prefix and default port.

One table for everyone who starts or probes a service without importing it: the local stack launcher
(hub_devstack), the image's health check (hub_common.healthcheck). Order: start order (the mocks first, the
gateway last: it takes traffic).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    module: str
    script: str
    env_prefix: str
    default_port: int

    @property
    def port_env(self) -> str:
        return f"{self.env_prefix}PORT"


SERVICES = (
    ServiceInfo("mock-operator", "mock_operator", "mock-operator", "MOCK_OPERATOR_", 3001),
    ServiceInfo("mock-rgs", "mock_rgs", "mock-rgs", "MOCK_RGS_", 3002),
    ServiceInfo("ledger", "hub_ledger", "hub-ledger", "LEDGER_", 3010),
    ServiceInfo("webhook-dispatcher", "hub_dispatcher", "hub-dispatcher", "DISPATCHER_", 3011),
    ServiceInfo("reconciler", "hub_reconciler", "hub-reconciler", "RECONCILER_", 3012),
    ServiceInfo("gateway", "hub_gateway", "hub-gateway", "GATEWAY_", 3000),
)


def service_in_command(argv: list[str]) -> ServiceInfo | None:
    """The service a command line runs: `python -m <module>` or its console script, also behind an init
    process (`docker-init -- python -m hub_gateway`)."""
    by_module = {s.module: s for s in SERVICES}
    by_script = {s.script: s for s in SERVICES}
    for i, arg in enumerate(argv):
        if arg == "-m" and i + 1 < len(argv):
            found = by_module.get(argv[i + 1])
            if found is not None:
                return found
        found = by_script.get(arg.rsplit("/", 1)[-1])
        if found is not None:
            return found
    return None
