"""One CLI vocabulary: a name means one thing in every command, defaults read one way.

Walks the real parser (every command and sub-command, the lazily built ``train``/``eval``
ones included) and looks at what ``--help`` shows.
"""

from __future__ import annotations

import argparse
import re

import pytest

from sigstream.cli.main import build_parser


def _commands() -> dict[str, list[argparse.Action]]:
    """'run' / 'train teb' / ... -> the actions its --help shows."""
    out: dict[str, list[argparse.Action]] = {}

    def walk(prog: str, parser: argparse.ArgumentParser) -> None:
        ensure = getattr(parser, "_ensure", None)
        if callable(ensure):
            ensure()
        sub = None
        shown = []
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                sub = a
            elif not isinstance(a, argparse._HelpAction) and a.help != argparse.SUPPRESS:
                shown.append(a)
        out[prog] = shown
        if sub is not None:
            for name, child in sub.choices.items():
                walk(f"{prog} {name}".strip(), child)

    walk("", build_parser())
    return out


COMMANDS = _commands()


def _where(option: str) -> set[str]:
    return {c for c, actions in COMMANDS.items()
            if any(option in a.option_strings for a in actions)}


# Names that once meant different things in different commands, and where each is now
# shown. --seconds is how much of a stream to take; --clip-seconds the length of each
# training or test example; --max-minutes a wall-time budget; --record-minutes a record's
# length; --workers the serve processes behind a router; --jobs how many files at once.
VOCABULARY = {
    "--seconds": {"run", "demo"},
    "--clip-seconds": {"train enhancer", "train extractor", "eval enhancer"},
    "--minutes": set(),
    "--record-minutes": {"train teb", "eval teb"},
    "--workers": {"route"},
    "--jobs": {"batch"},
    "--per-condition": {"eval enhancer", "eval forecaster"},
    "--noise-std": {"train forecaster"},
}


@pytest.mark.parametrize("option", sorted(VOCABULARY))
def test_an_option_name_is_shown_only_where_it_means_one_thing(option: str) -> None:
    assert _where(option) == VOCABULARY[option]


def test_preset_always_names_the_preset_a_model_spec_loads() -> None:
    """--preset P in train/eval is the P of --model NAME:preset=P everywhere."""
    for command in _where("--preset"):
        family = command.split()[-1]
        (action,) = [a for a in COMMANDS[command] if "--preset" in a.option_strings]
        if command.startswith("train"):
            assert f"--model {family}:preset=P" in action.help, (command, action.help)
        else:
            assert "preset" in action.help


def test_defaults_are_shown_in_one_style() -> None:
    """A default is "(default: X)": never "(default X)" nor a bare "(X)" at the end."""
    bad = []
    for command, actions in COMMANDS.items():
        for a in actions:
            text = " ".join((a.help or "").split())
            if "(default " in text or re.search(r"\((\d[\d.]*|low|local|info|torch)\)$", text):
                bad.append(f"{command} {'/'.join(a.option_strings)}: {text}")
    assert not bad, "\n".join(bad)


def test_every_command_help_has_an_example() -> None:
    missing = []
    for command in COMMANDS:
        if not command or command in ("train", "eval", "data"):
            continue  # groups of sub-commands: each sub-command has its own
        parser = build_parser()
        for word in command.split():
            parser = next(a for a in parser._actions
                          if isinstance(a, argparse._SubParsersAction)).choices[word]
        epilog = parser.epilog or ""
        if "example" not in epilog.lower():
            missing.append(command)
    assert not missing, missing
