"""The `eva00` command line: every delegated command group has a module with a `main`, the shared
parser routes each stack and db command to its function, and `eva00 config` prints the table."""

from __future__ import annotations

import importlib

import pytest

from eva00.cli import db, stack
from eva00.cli.main import DELEGATED, DELEGATED_HELP, build_parser, main


@pytest.mark.parametrize("command", sorted(DELEGATED))
def test_every_delegated_command_names_a_module_with_a_main_and_a_help_line(command: str) -> None:
    assert callable(importlib.import_module(DELEGATED[command]).main)
    assert DELEGATED_HELP[command]


@pytest.mark.parametrize(("argv", "func"), [
    (["up"], stack.cmd_up), (["down"], stack.cmd_down), (["ps"], stack.cmd_ps),
    (["backlog"], stack.cmd_backlog), (["config"], stack.cmd_config), (["db", "init"], db.cmd_db_init),
])
def test_the_shared_parser_routes_each_stack_and_db_command_to_its_function(
        argv: list[str], func: object) -> None:
    assert build_parser().parse_args(argv).func is func


def test_eva00_config_prints_one_markdown_row_per_setting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "| Variable | Default | Meaning |"
    assert "| `EVA00_FETCHER_STREAMS` | `priority,scheduled` |" in "\n".join(lines)
