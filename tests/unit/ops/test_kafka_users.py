"""deploy/'s Strimzi KafkaUsers grant exactly the ACLs of hub_common.kafka_access, the one source of truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from hub_common.kafka_access import PRINCIPALS, Principal

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"

Acl = tuple[str, str, str, str]  # resource type, name, pattern type, operation


def _kafka_users() -> dict[str, dict[str, Any]]:
    users: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "KafkaUser":
                name = doc["metadata"]["name"]
                assert name not in users, f"KafkaUser {name} defined twice (second in {path})"
                users[name] = doc
    return users


def _strimzi_acls(user: dict[str, Any]) -> set[Acl]:
    acls = set()
    for rule in user["spec"]["authorization"]["acls"]:
        resource = rule["resource"]
        assert rule.get("type", "allow") == "allow" and rule.get("host", "*") == "*"
        for operation in rule["operations"]:
            acls.add((resource["type"], resource.get("name", ""), resource.get("patternType", "literal"), operation))
    return acls


def _module_acls(principal: Principal) -> set[Acl]:
    return {(g.resource, g.name, g.pattern, op) for g in principal.grants for op in g.operations}


def test_every_principal_has_a_kafka_user_with_exactly_its_acls() -> None:
    users = _kafka_users()
    assert set(users) == {p.user for p in PRINCIPALS}
    for principal in PRINCIPALS:
        user = users[principal.user]
        assert user["spec"]["authentication"]["type"] in {"scram-sha-512", "tls"}
        assert user["spec"]["authorization"]["type"] == "simple"
        deployed, source = _strimzi_acls(user), _module_acls(principal)
        extra, missing = sorted(deployed - source), sorted(source - deployed)
        assert deployed == source, f"{principal.user}: only in deploy/ {extra}, only in kafka_access {missing}"
