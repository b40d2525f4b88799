from __future__ import annotations

import io
from pathlib import Path

import pytest

from hubctl.__main__ import build_parser
from hubctl.context import HubctlSettings, load_env_file
from hubctl.output import render
from support.hubctl import hubctl_sync


def test_env_file_fills_only_missing_keys(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text(
        "# made by make up\nHUB_URL=http://127.0.0.1:3000\nDATABASE_URL='postgresql://x/y'\nexport A=1\n"
    )
    environ = {"HUB_URL": "http://other"}
    loaded = load_env_file(env_file, environ)
    assert loaded == ["DATABASE_URL", "A"]
    assert environ == {"HUB_URL": "http://other", "DATABASE_URL": "postgresql://x/y", "A": "1"}
    assert load_env_file(tmp_path / "missing", environ) == []


@pytest.mark.parametrize(
    "argv",
    [
        ["--json", "topics"],
        ["topics", "--json"],
        ["tx", "show", "r-1", "--json"],
        ["--json", "db", "maintenance"],
        ["trace", "--json", "r-1"],
    ],
)
def test_json_flag_works_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.json is True


def test_table_keeps_long_values_whole_and_json_is_unchanged() -> None:
    out = io.StringIO()
    path = "reconciliation-reports/" + "x" * 120 + ".csv"
    render([{"a": 1, "b": None}, {"a": path, "b": "[red]2"}], as_json=False, columns=["a", "b"], out=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["a", "b"]
    assert lines[2].split() == ["1", "-"]
    assert lines[3].split() == [path, "[red]2"]  # whole, and markup-looking text printed as it is
    assert all(line == line.rstrip() for line in lines)
    out = io.StringIO()
    render({"x": 1}, as_json=True, out=out)
    assert out.getvalue() == '{\n  "x": 1\n}\n'


def test_mapping_renders_one_line_per_key() -> None:
    out = io.StringIO()
    render({"refId": "bet-1", "status": None}, as_json=False, out=out)
    assert [line.split() for line in out.getvalue().splitlines()] == [["refId", "bet-1"], ["status", "-"]]


def test_defaults_of_the_new_options() -> None:
    stats = build_parser().parse_args(["stats"])
    assert (stats.hours, stats.days, stats.rate_minutes, stats.burst_minutes) == (24, 7, 60, 5)
    trace = build_parser().parse_args(["trace", "bet-1", "--logs", ".hub/logs"])
    assert (trace.id, trace.logs, trace.kafka) == ("bet-1", Path(".hub/logs"), True)


def test_an_unreachable_database_is_one_line_not_a_traceback() -> None:
    # Port 1 on loopback: nothing listens there, the connect is refused at once.
    settings = HubctlSettings.model_validate({"database": {"url": "postgresql://u@127.0.0.1:1/db"}})
    for argv in (["tx", "stuck"], ["keys", "stuck"], ["stats"], ["trace", "bet-1", "--no-kafka"]):
        ran = hubctl_sync(settings, *argv)
        assert ran.code == 1
        assert ran.err.startswith("hubctl: cannot reach PostgreSQL: ") and ran.err.count("\n") == 1, ran.err
        assert ran.out == ""


def test_dlq_replay_without_a_selection_is_refused_before_anything_runs() -> None:
    ran = hubctl_sync(HubctlSettings(), "dlq", "replay")
    assert (ran.code, ran.out) == (1, "")
    assert "give a selection" in ran.err and "--all" in ran.err
