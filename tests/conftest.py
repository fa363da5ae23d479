"""Shared test settings; ``tests/_support`` holds helpers the tests import (``from _support
import jack``)."""

from __future__ import annotations

import os
import sys

import torch
from hypothesis import settings

settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # for `_support`
