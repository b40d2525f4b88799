"""Who may do what on Kafka: one principal per Hub component, the ACLs it needs, the topics an admin creates.

This module is the one source of truth for Kafka authorization. The secured development broker applies it
(hub_devstack.kafka_secure); deploy/'s Strimzi KafkaUser resources are checked against it by a test, so a topic
or group added here must be added there (docs/security.md). Vocabulary is Strimzi's ACL rule schema: resource
type `topic`/`group`/`cluster`, pattern `literal`/`prefix`, operations `Read`, `Write`, `Describe`, ...

Rules (decided for the whole project):
- topics are created by an admin step before the services start: no service holds Create on a Hub topic
  (the reconciler creates faust's internal topics under its own application id, nothing else);
- `<topic>.dlq` is written by whoever consumes `<topic>`;
- a principal's user name is its SCRAM user, the CN of its client certificate, and its KafkaUser's name.
Names are unprefixed here; a deployment with `KAFKA_TOPIC_PREFIX` applies `with_prefix`. The topics an admin
creates are `hub_common.kafka.hub_topics`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from hub_common.kafka import (
    COMMANDS,
    DLQ_SUFFIX,
    MISMATCHES,
    OPERATOR_TRANSACTIONS,
    RETRY_TOPIC_PREFIX,
    TRANSACTIONS,
    WEBHOOKS_DLQ,
)

ResourceType = Literal["topic", "group", "cluster"]
PatternType = Literal["literal", "prefix"]
Operation = Literal["Read", "Write", "Create", "Describe", "DescribeConfigs"]
ALL_RESOURCES = "*"

# Consumer groups (the services' defaults: LEDGER_GROUP_ID, DISPATCHER_CONSUMER_GROUP, RECONCILER_APP_ID).
LEDGER_GROUP = "hub-ledger"
DISPATCHER_GROUP = "hub-dispatcher"  # and `hub-dispatcher-retry-<tier>`, one per retry tier
RECONCILER_APP_ID = "hub-reconciler"  # faust: the group id, and the prefix of its internal topics

# The contract's webhook schedule has seven retries; an admin step creates one topic per tier.
DEFAULT_RETRY_TIERS = 7


@dataclass(frozen=True)
class Grant:
    resource: ResourceType
    name: str
    operations: tuple[Operation, ...]
    pattern: PatternType = "literal"

    def with_prefix(self, prefix: str) -> Grant:
        if not prefix or self.resource == "cluster" or self.name == ALL_RESOURCES:
            return self
        return replace(self, name=prefix + self.name)


@dataclass(frozen=True)
class Principal:
    component: str
    user: str
    grants: tuple[Grant, ...]

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def with_prefix(self, prefix: str) -> Principal:
        return replace(self, grants=tuple(g.with_prefix(prefix) for g in self.grants))


def _produce(topic: str, pattern: PatternType = "literal") -> Grant:
    return Grant("topic", topic, ("Write", "Describe"), pattern)


def _consume(topic: str, pattern: PatternType = "literal") -> Grant:
    return Grant("topic", topic, ("Read", "Describe"), pattern)


def _consume_produce(topic: str, pattern: PatternType = "literal") -> Grant:
    return Grant("topic", topic, ("Read", "Write", "Describe"), pattern)


def _group(name: str, pattern: PatternType = "literal") -> Grant:
    return Grant("group", name, ("Read",), pattern)


GATEWAY = Principal(
    "gateway",
    "hub-gateway",
    (
        _produce(COMMANDS),
        # The outcome waiter reads without a consumer group (assigned partitions, no commits).
        _consume(TRANSACTIONS),
        _produce(TRANSACTIONS + DLQ_SUFFIX),
    ),
)
LEDGER = Principal(
    "ledger",
    "hub-ledger",
    (_consume(COMMANDS), _group(LEDGER_GROUP), _produce(TRANSACTIONS), _produce(COMMANDS + DLQ_SUFFIX)),
)
DISPATCHER = Principal(
    "webhook-dispatcher",
    "hub-webhook-dispatcher",
    (
        _consume(TRANSACTIONS),
        _group(DISPATCHER_GROUP, "prefix"),
        # Every retry tier and its .dlq: read by one tier's consumer, written by the tier before it.
        _consume_produce(RETRY_TOPIC_PREFIX, "prefix"),
        _produce(WEBHOOKS_DLQ),
        _produce(TRANSACTIONS + DLQ_SUFFIX),
    ),
)
RECONCILER = Principal(
    "reconciler",
    "hub-reconciler",
    (
        _consume(TRANSACTIONS),
        _consume_produce(OPERATOR_TRANSACTIONS),  # the operator feed is published here, then joined
        _produce(MISMATCHES),
        _produce(TRANSACTIONS + DLQ_SUFFIX),
        _produce(OPERATOR_TRANSACTIONS + DLQ_SUFFIX),
        _group(RECONCILER_APP_ID),
        # faust's changelog and leader topics: `<app id>-...`, created by faust itself.
        Grant("topic", RECONCILER_APP_ID + "-", ("Create", "Read", "Write", "Describe"), "prefix"),
    ),
)
HUBCTL = Principal(
    "hubctl",
    "hub-hubctl",
    (
        _produce(COMMANDS),  # tx replay
        _produce(RETRY_TOPIC_PREFIX, "prefix"),  # webhooks redrive
        # Reading every Hub topic (dlq, trace, topics) and every group's committed offsets (lag).
        _consume("hub.", "prefix"),
        _consume("operator.", "prefix"),
        Grant("group", ALL_RESOURCES, ("Describe",)),
        # recovery apply: after a database restore, the groups whose work lives in PostgreSQL are moved back
        # (an offset commit from outside the group, accepted only while it has no member).
        _group(LEDGER_GROUP),
        _group(DISPATCHER_GROUP, "prefix"),
        _group(RECONCILER_APP_ID),
    ),
)

PRINCIPALS: tuple[Principal, ...] = (GATEWAY, LEDGER, DISPATCHER, RECONCILER, HUBCTL)
BY_COMPONENT = {p.component: p for p in PRINCIPALS}
