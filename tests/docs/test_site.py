"""The documentation site builds with ``mkdocs build --strict`` (a broken link or anchor,
a page missing from the navigation or an API name mkdocstrings cannot resolve fails it),
and the README's links point at files that exist."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_site_builds_strict(tmp_path):
    missing = [m for m in ("mkdocs", "mkdocstrings", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(m.split(".")[0]) is None]
    if missing:
        pytest.fail(f"{', '.join(missing)} not installed: the docs tools come with the dev "
                    "extras (pip install -e '.[dev]')")
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict",
                        "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(site)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, f"mkdocs build --strict failed:\n{r.stdout}\n{r.stderr}"
    pages = {
        "index.html": "Quick start",
        "concepts/index.html": "The streaming contract",
        "guides/zeromq/index.html": "Wire format v1",
        "guides/live-audio/index.html": "Latency budget",
        "guides/benchmarks/index.html": "Per-chunk latency",
        "guides/own-data/index.html": "Your own series",
        "models/forecaster/index.html": "sigstream eval forecaster",
        "cli/index.html": "sigstream serve",
        "api/index.html": "StreamRunner",
        "wire/index.html": "SIGS",
    }
    for page, text in pages.items():
        path = site / page
        assert path.is_file(), f"{page} not built"
        assert text in path.read_text(), f"{page} lacks {text!r}"
    # mkdocstrings rendered the API, not just the headings
    api = (site / "api" / "index.html").read_text()
    for name in ("StreamingModule", "load_model", "build_model", "request_stats", "Pipeline"):
        assert f'id="{name}"' in api or f".{name}\"" in api, f"API reference lacks {name}"


def test_readme_links_resolve():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if "://" not in t]
    assert local, "the README links to the documentation"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README links to missing files: {missing}"
