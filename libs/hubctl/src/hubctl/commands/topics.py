"""`hubctl topics`: every Hub topic with its size, each consumer group's lag, and dead-letter depth."""

from __future__ import annotations

import argparse
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from hub_common.kafka import admin_client, client_options, translate
from hub_common.settings import KafkaSettings
from hubctl.cli import Subparsers, command
from hubctl.context import HubctlSettings
from hubctl.output import render


def register(sub: Subparsers) -> None:
    command(sub, "topics", help="messages, consumer lag per group and DLQ depth per topic", handler=run)


async def collect(settings: KafkaSettings) -> list[dict[str, Any]]:
    admin = admin_client(settings, request_timeout_ms=10_000)
    consumer = AIOKafkaConsumer(**client_options(settings), enable_auto_commit=False)
    try:
        await admin.start()
        await consumer.start()
        names = sorted(t for t in await admin.list_topics() if t.startswith(settings.topic_prefix) and t[:1] != "_")
        described = await admin.describe_topics(names) if names else []
        parts = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
        end = await consumer.end_offsets(parts) if parts else {}
        begin = await consumer.beginning_offsets(parts) if parts else {}
        lag: dict[str, dict[str, int]] = {}
        for group_id, _protocol in await admin.list_consumer_groups():
            committed = await admin.list_consumer_group_offsets(group_id)
            for tp, meta in committed.items():
                if tp in end and meta.offset >= 0:
                    per_topic = lag.setdefault(tp.topic, {})
                    per_topic[group_id] = per_topic.get(group_id, 0) + max(end[tp] - meta.offset, 0)
    except KafkaError as exc:
        raise translate(exc) from exc
    finally:
        await consumer.stop()
        await admin.close()
    rows = []
    for topic in names:
        tps = [tp for tp in parts if tp.topic == topic]
        messages = sum(end[tp] - begin[tp] for tp in tps)
        groups = lag.get(topic, {})
        rows.append(
            {
                "topic": topic,
                "partitions": len(tps),
                "messages": messages,
                "dlq": topic.endswith(".dlq"),
                "lag": ", ".join(f"{g}={n}" for g, n in sorted(groups.items())) or "-",
                "lag_by_group": groups,
            }
        )
    return rows


async def run(args: argparse.Namespace, settings: HubctlSettings) -> int:
    rows = await collect(settings.kafka)
    render(rows, as_json=args.json, columns=["topic", "partitions", "messages", "dlq", "lag"])
    return 0
