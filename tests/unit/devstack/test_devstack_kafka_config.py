"""The local broker's generated configuration and the completeness rules of its jar cache."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import pytest

from hub_devstack.errors import DevstackError, ToolMissingError
from hub_devstack.kafka_jars import JarCache
from hub_devstack.kafka_local import random_cluster_id, server_properties


def _parse(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_server_properties_single_node_kraft_on_the_given_ports(tmp_path: Path) -> None:
    props = _parse(server_properties(port=41001, controller_port=41002, log_dir=tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:41002"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:41001,CONTROLLER://127.0.0.1:41002"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:41001"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert "controller.quorum.bootstrap.servers" not in props  # static voters: format without --standalone


def test_server_properties_is_trimmed_for_a_small_test_box(tmp_path: Path) -> None:
    props = _parse(server_properties(port=1, controller_port=2, log_dir=tmp_path))
    assert props["auto.create.topics.enable"] == "false"
    assert props["log.cleaner.dedupe.buffer.size"] == str(16 * 1024 * 1024)
    assert props["offsets.topic.num.partitions"] == "1"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "share.coordinator.state.topic.replication.factor"):  # fmt: skip
        assert props[key] == "1"
    assert int(props["num.io.threads"]) <= 2


def test_cluster_ids_are_kafka_uuids_the_cli_accepts() -> None:
    ids = {random_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{22}", i) and not i.startswith("-") for i in ids)


def _fill(cache: JarCache, names: list[str], listed: list[str] | None = None) -> None:
    cache.libs.mkdir(parents=True)
    for name in names:
        (cache.libs / name).write_bytes(b"PK")
    cache.marker.write_text("\n".join(names if listed is None else listed) + "\n")


def test_cache_is_complete_only_with_a_marker_naming_the_broker_jar_and_all_jars_present(tmp_path: Path) -> None:
    jars = ["kafka_2.13-4.1.1.jar", "kafka-clients-4.1.1.jar"]
    cache = JarCache(tmp_path / "c")
    assert not cache.is_complete()  # nothing yet
    _fill(cache, jars)
    assert cache.is_complete()
    (cache.libs / "kafka-clients-4.1.1.jar").unlink()
    assert not cache.is_complete()  # a listed jar went missing


def test_cache_without_marker_or_with_empty_jars_or_other_version_is_incomplete(tmp_path: Path) -> None:
    a = JarCache(tmp_path / "a")
    a.libs.mkdir(parents=True)
    (a.libs / "kafka_2.13-4.1.1.jar").write_bytes(b"PK")
    assert not a.is_complete()  # an interrupted download leaves jars but no marker
    b = JarCache(tmp_path / "b")
    _fill(b, ["kafka_2.13-4.1.1.jar"])
    (b.libs / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    assert not b.is_complete()
    c = JarCache(tmp_path / "c", version="4.2.0")
    _fill(c, ["kafka_2.13-4.1.1.jar"])
    assert not c.is_complete()


def _fake_mvn(bin_dir: Path, script: str) -> Path:
    bin_dir.mkdir(exist_ok=True)
    mvn = bin_dir / "mvn"
    mvn.write_text("#!/bin/sh\n" + script)
    mvn.chmod(mvn.stat().st_mode | stat.S_IXUSR)
    return bin_dir


FETCH = """echo run >> "$CALLS"
for arg in "$@"; do case "$arg" in -DoutputDirectory=*) out="${arg#-DoutputDirectory=}";; esac; done
mkdir -p "$out" && printf PK > "$out/kafka_2.13-4.1.1.jar" && printf PK > "$out/scala-library-2.13.16.jar"
"""


def test_ensure_fetches_once_then_reuses_the_complete_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    monkeypatch.setenv("PATH", str(_fake_mvn(tmp_path / "bin", FETCH)) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("CALLS", str(calls))
    cache = JarCache(tmp_path / "cache")
    cache.ensure(tmp_path / "pom.xml")
    cache.ensure(tmp_path / "pom.xml")
    assert calls.read_text().count("run") == 1
    assert cache.marker.read_text().split() == ["kafka_2.13-4.1.1.jar", "scala-library-2.13.16.jar"]
    assert cache.classpath == f"{cache.libs}/*"


def test_ensure_refetches_an_incomplete_cache_from_scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(_fake_mvn(tmp_path / "bin", FETCH)) + os.pathsep + os.environ["PATH"])
    monkeypatch.setenv("CALLS", str(tmp_path / "calls"))
    cache = JarCache(tmp_path / "cache")
    cache.libs.mkdir(parents=True)
    (cache.libs / "half-written.jar").write_bytes(b"")
    cache.ensure(tmp_path / "pom.xml")
    assert cache.is_complete()
    assert not (cache.libs / "half-written.jar").exists()


def test_a_failing_mvn_reports_its_output_and_leaves_no_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = 'echo "[ERROR] Could not resolve dependencies: network is unreachable"; exit 1\n'
    monkeypatch.setenv("PATH", str(_fake_mvn(tmp_path / "bin", script)) + os.pathsep + os.environ["PATH"])
    cache = JarCache(tmp_path / "cache")
    with pytest.raises(DevstackError, match="network is unreachable"):
        cache.ensure(tmp_path / "pom.xml")
    assert not cache.marker.exists()


def test_missing_mvn_is_a_clear_tool_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissingError) as info:
        JarCache(tmp_path / "cache").ensure(tmp_path / "pom.xml")
    assert info.value.tool == "mvn"
    assert "install Maven" in info.value.message
