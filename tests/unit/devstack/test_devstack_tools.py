"""Clear errors when a tool is missing; where the PostgreSQL binaries are looked up."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from hub_devstack.errors import ToolMissingError
from hub_devstack.kafka_jars import JarCache
from hub_devstack.kafka_local import LocalKafka
from hub_devstack.postgres_local import LocalPostgres, as_server_user, find_pg_bin


def _exe(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_pg_binaries_come_from_the_newest_versioned_dir_when_not_on_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    _exe(tmp_path / "9.6" / "bin" / "initdb")
    newest = _exe(tmp_path / "15" / "bin" / "initdb")
    _exe(tmp_path / "13" / "bin" / "initdb")
    dirs = [str(tmp_path / v / "bin") for v in ("9.6", "13", "15")]
    assert find_pg_bin("initdb", dirs) == str(newest)


def test_pg_binaries_on_path_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = _exe(tmp_path / "bin" / "pg_ctl")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert find_pg_bin("pg_ctl", [str(_exe(tmp_path / "15" / "bin" / "pg_ctl").parent)]) == str(on_path)


def test_missing_initdb_names_the_tool_and_the_alternatives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ToolMissingError) as info:
        find_pg_bin("initdb", [])
    assert info.value.tool == "initdb"
    assert "DATABASE_URL" in info.value.message


def test_root_hands_the_server_to_the_postgres_account() -> None:
    assert as_server_user(["initdb", "-D", "x"], is_root=True) == [
        "runuser",
        "-u",
        "postgres",
        "--",
        "initdb",
        "-D",
        "x",
    ]
    assert as_server_user(["initdb"], is_root=False) == ["initdb"]


def test_missing_java_is_a_clear_tool_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    broker = LocalKafka(JarCache(tmp_path / "cache"), tmp_path / "log4j2.properties")
    with pytest.raises(ToolMissingError) as info:
        broker.start()
    assert info.value.tool == "java"
    assert "JDK >= 17" in info.value.message


def test_local_postgres_without_binaries_fails_before_creating_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr("hub_devstack.postgres_local.glob.glob", lambda _pattern: [])
    with pytest.raises(ToolMissingError), LocalPostgres():
        pass  # pragma: no cover
