"""Shared fixtures: small exports of the embedded world, made once per test session."""
from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def quick_world(tmp_path_factory):
    """`s2mos world export --preset quick --n-points 120` through the real command."""
    from pipelines.cli import main

    out = tmp_path_factory.mktemp("world_quick")
    assert main(["world", "export", "--preset", "quick", "--n-points", "120", "--out", str(out), "--quiet"]) == 0
    return out
