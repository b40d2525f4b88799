from __future__ import annotations

import io
from pathlib import Path

import pytest

from hubctl.__main__ import build_parser
from hubctl.context import load_env_file
from hubctl.output import render


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


@pytest.mark.parametrize("argv", [["--json", "topics"], ["topics", "--json"]])
def test_json_flag_works_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.json is True


def test_table_and_json_rendering() -> None:
    out = io.StringIO()
    render([{"a": 1, "b": None}, {"a": "long" * 20, "b": 2}], as_json=False, columns=["a", "b"], out=out)
    lines = out.getvalue().splitlines()
    assert lines[0].split() == ["a", "b"]
    assert lines[2].split() == ["1", "-"]
    assert lines[3].endswith("...  2")
    out = io.StringIO()
    render({"x": 1}, as_json=True, out=out)
    assert out.getvalue() == '{\n  "x": 1\n}\n'
