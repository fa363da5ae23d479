"""Every code example in README.md and docs/ runs, or at least parses.

* each ```python block is executed, in a fresh namespace, with a temporary folder as the
  working directory (``SIGSTREAM_DATA`` pointing at a tiny speech corpus written here, and
  a small synthetic-noise bank, so the corpus example needs no real corpus);
* each ``sigstream ...`` command of a ```sh block is parsed by the real argparse parser,
  without running it (the shell examples train models, start servers and open sound
  cards: far too long for CI); of ``A=1 sigstream ... &`` or ``x | sigstream ...`` only
  the sigstream command is parsed;
* every fenced block names its language, so nothing meant to run hides in a bare block.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LANGUAGES = {"python", "sh", "text", "json"}
SHELL = {"sh"}
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the first code line
    lang: str
    code: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def fenced_blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file (indented fences in lists included)."""
    blocks, lines = [], path.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = m["indent"], m["fence"]
        lang = m["info"].strip().split(" ")[0] if m["info"].strip() else ""
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence)
                                      and lines[j].strip().strip(fence[0]) == ""):
            line = lines[j]
            body.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.relative_to(ROOT)}:{i + 1}: unclosed code fence")
        blocks.append(Block(path, i + 2, lang, "\n".join(body)))
        i = j + 1
    return blocks


BLOCKS = [b for f in FILES for b in fenced_blocks(f)]
PYTHON = [b for b in BLOCKS if b.lang == "python"]
SH = [b for b in BLOCKS if b.lang in SHELL]


# -- shell command lines ------------------------------------------------------------------

def logical_lines(code: str) -> list[str]:
    """Lines as a shell reads them: backslash continuations joined, a quoted string that
    spans lines kept whole."""
    out, buf, joined = [], "", False
    for line in code.split("\n"):
        buf = buf + line if joined else (f"{buf}\n{line}" if buf else line)
        joined = buf.endswith("\\")
        if joined:
            buf = buf[:-1] + " "
            continue
        try:
            shlex.split(buf, comments=True)
        except ValueError:  # an open quote: the next line continues the string
            continue
        if buf.strip():
            out.append(buf)
        buf = ""
    if buf.strip():
        raise AssertionError(f"unterminated shell line: {buf!r}")
    return out


# programs a sigstream command's output may be piped into in the docs; anything else
# after `sigstream ... |` is taken for a synopsis (`--arch augmentor|causal`), not a pipe
PIPE_TARGETS = {"jq", "head", "tail", "grep", "tee", "sort", "wc", "less"}


def _segments(line: str) -> list[tuple[list[str], str]]:
    """(words, the separator that ends them) of each simple command on a shell line, after
    environment assignments; redirections dropped."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
    lex.whitespace_split = True
    lex.commenters = "#"
    segments: list[tuple[list[str], str]] = []
    words: list[str] = []
    skip = False
    for tok in lex:
        if skip:
            skip = False
        elif tok and set(tok) <= set(";&|()"):
            segments.append((words, tok))
            words = []
        elif tok and set(tok) <= set("<>&"):
            skip = True  # the redirection's target
        else:
            words.append(tok)
    segments.append((words, ""))
    out = []
    for words, sep in segments:
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words = words[1:]
        out.append((words, sep))
    return out


def _sigstream_args(words: list[str]) -> list[str] | None:
    if words and os.path.basename(words[0]) == "sigstream":
        return words[1:]
    if (words and re.fullmatch(r"python(3(\.\d+)?)?", os.path.basename(words[0]))
            and words[1:3] == ["-m", "sigstream"]):
        return words[3:]
    return None


def sigstream_commands(line: str) -> list[list[str]]:
    """The argument lists of the sigstream commands on one shell line (``sigstream ...``,
    ``.venv/bin/sigstream ...``, ``python -m sigstream ...``), between ``&&``, ``||``,
    ``;``, ``|`` and ``&``."""
    return [args for words, _ in _segments(line)
            if (args := _sigstream_args(words)) is not None]


def bad_pipes(line: str) -> list[str]:
    """What a sigstream command is piped into, where that is not a known program."""
    segments = _segments(line)
    return [nxt[0][0] if nxt[0] else "(nothing)"
            for (words, sep), nxt in zip(segments, segments[1:], strict=False)
            if _sigstream_args(words) is not None and sep == "|"
            and (not nxt[0] or nxt[0][0] not in PIPE_TARGETS)]


@pytest.fixture(scope="module")
def parser():
    from sigstream.cli.main import build_parser

    return build_parser()


def parse_error(parser, args: list[str]) -> str | None:
    """None if argparse accepts ``args``, else its message."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(args)
    except SystemExit as exc:
        if exc.code not in (0, None):
            return err.getvalue().strip() or f"exit status {exc.code}"
    return None


def test_the_examples_are_found():
    """The collection is not vacuous: the docs hold many examples of both kinds."""
    assert len(PYTHON) >= 8
    commands = [c for b in SH for line in logical_lines(b.code) for c in sigstream_commands(line)]
    assert len(commands) >= 80


def test_the_command_splitter():
    line = "BACKEND=onnx sigstream serve --model m --bind tcp://127.0.0.1:1 & # comment | x"
    assert sigstream_commands(line) == [["serve", "--model", "m", "--bind", "tcp://127.0.0.1:1"]]
    assert sigstream_commands("cat x | python -m sigstream run --model 'a b' > out.txt") == [
        ["run", "--model", "a b"]]
    assert sigstream_commands(".venv/bin/pip install . && .venv/bin/sigstream demo") == [["demo"]]
    assert sigstream_commands("pip install 'sigstream[ray]'") == []
    assert logical_lines('sigstream run \\\n  --x 1\npython -c "\nprint(1)"\n') == [
        "sigstream run    --x 1", 'python -c "\nprint(1)"']


def test_the_checker_rejects_what_argparse_rejects(parser):
    assert parse_error(parser, ["run", "--model", "identity", "--source", "a", "--sink", "b"]) \
        is None
    assert "unrecognized" in parse_error(parser, ["run", "--model", "identity", "--source", "a",
                                                  "--sink", "b", "--no-such-option"])
    assert "invalid choice" in parse_error(parser, ["nosuchcommand"])
    # a synopsis is not a command: `--arch augmentor|causal` is a shell pipe
    assert bad_pipes("sigstream eval enhancer --arch augmentor|causal|all --json r.json") == [
        "causal"]
    assert bad_pipes("sigstream models --json | jq '.[].name'") == []


def test_every_fence_names_its_language():
    bare = [f"{b.where} ({b.lang or 'no language'})" for b in BLOCKS if b.lang not in LANGUAGES]
    assert not bare, ("fenced blocks must be tagged " + ", ".join(sorted(LANGUAGES))
                      + ": " + ", ".join(bare))


@pytest.mark.parametrize("block", SH, ids=[b.where for b in SH])
def test_sigstream_commands_parse(block: Block, parser):
    errors = []
    for line in logical_lines(block.code):
        for args in sigstream_commands(line):
            message = parse_error(parser, args)
            if message:
                errors.append(f"sigstream {shlex.join(args)}\n    {message}")
        errors += [f"{line.strip()}\n    piped into {target!r}: a synopsis? (write it in a "
                   "text block)" for target in bad_pipes(line)]
    assert not errors, f"{block.where}: commands the parser rejects:\n" + "\n".join(errors)


# -- Python examples ----------------------------------------------------------------------

def _write_corpus(root: Path) -> None:
    """A speech corpus of tones in the layout and manifest of ``sigstream data speech``:
    four talker groups and two noise sources (sound effects, music) per split."""
    from sigstream.models.enhancer.corpus import SAMPLE_RATE as sr
    from sigstream.models.enhancer.corpus import VERSION

    clips, rng = [], np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for g in range(4):
            group = f"{split}pkg:lang{g}"
            for k in range(2):
                rel = f"speech/{split}/{split}pkg_lang{g}/{k}.wav"
                t = np.arange(sr // 2) / sr
                x = 0.3 * np.sin(2 * np.pi * (110 + 40 * g + 7 * k) * t)
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                sf.write(root / rel, x, sr, subtype="PCM_16")
                clips.append({"path": rel, "kind": "speech", "split": split, "source": group,
                              "group": group, "seconds": 0.5})
        for family, seconds in (("sfx", 0.2), ("music", 2.0)):
            source = f"{split}noise:{family}"
            rel = f"noise/{split}/{split}noise_{family}/0.wav"
            x = 0.3 * rng.standard_normal(int(seconds * sr))
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, x, sr, subtype="PCM_16")
            clips.append({"path": rel, "kind": "noise", "split": split, "source": source,
                          "group": family, "seconds": seconds})
    (root / "manifest.json").write_text(json.dumps({"version": VERSION, "sample_rate": sr,
                                                    "clips": clips}))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("speech-corpus")
    _write_corpus(root)
    return root


@pytest.fixture
def snippet_env(corpus_dir, tmp_path, monkeypatch):
    from sigstream.models.enhancer import noises

    monkeypatch.setenv("SIGSTREAM_DATA", str(corpus_dir))
    # the synthetic-noise bank the training batches slice: 0.5 s variants, not 5 s ones
    monkeypatch.setattr(noises, "_BANK_SECONDS", 0.5)
    monkeypatch.setattr(noises, "_BANK_VARIANTS", dict.fromkeys(noises._BANK_VARIANTS, 2))
    monkeypatch.setattr(noises, "_BANK", {})
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("block", PYTHON, ids=[b.where for b in PYTHON])
def test_python_example_runs(block: Block, snippet_env):
    # padded so that a traceback names the Markdown file's own line numbers
    code = compile("\n" * (block.line - 1) + block.code, str(block.path), "exec")
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        exec(code, {"__name__": "__docs_example__"})
    took = time.perf_counter() - start
    assert took < 60, f"{block.where} took {took:.1f} s: keep documentation examples quick"
