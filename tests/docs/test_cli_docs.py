"""docs/cli.md is what scripts/gen_cli_docs.py renders from the real parser, so the CLI
reference cannot go stale: change a command's options, then run
``python scripts/gen_cli_docs.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_cli_docs",
                                                  ROOT / "scripts" / "gen_cli_docs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("gen_cli_docs", module)
    spec.loader.exec_module(module)
    return module


def test_committed_cli_reference_is_current():
    rendered = _generator().render()
    committed = (ROOT / "docs" / "cli.md").read_text()
    assert committed == rendered, ("docs/cli.md is stale: run `python scripts/gen_cli_docs.py` "
                                   "and commit the result")


def test_every_command_and_option_is_in_the_reference():
    import argparse

    from sigstream.cli.main import build_parser

    text = _generator().render()

    def walk(parser: argparse.ArgumentParser, prog: str) -> None:
        ensure = getattr(parser, "_ensure", None)
        if ensure:
            ensure()
        assert f"`{prog}`" in text, prog
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    walk(child, f"{prog} {name}")
            elif action.help is not argparse.SUPPRESS:
                for option in action.option_strings:
                    assert option in text, f"{prog}: {option}"

    walk(build_parser(), "sigstream")


def test_rendering_does_not_depend_on_the_terminal(monkeypatch):
    gen = _generator()
    monkeypatch.setenv("COLUMNS", "40")
    narrow = gen.render()
    monkeypatch.setenv("COLUMNS", "300")
    assert gen.render() == narrow
