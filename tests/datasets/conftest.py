"""Fixtures of the dataset tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def fast_tmp_factory():
    """Make folders for fake datasets on a RAM disk when the machine has one: the fakes hold
    thousands of small files, and on the CI machines' disk each file costs about a millisecond."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="coderclip-fakes-", dir=base))
    counter = iter(range(1_000_000))

    def make(name: str) -> Path:
        d = root / f"{name}-{next(counter)}"
        d.mkdir()
        return d

    yield make
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def fast_tmp(fast_tmp_factory, request) -> Path:
    return fast_tmp_factory(request.node.name[:40].replace("/", "_"))
