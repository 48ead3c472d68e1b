"""Shared tools of the robustness tests: run the command line in process and check that a failure
is one clean line with the right exit status."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from coderclip.cli import main


def cli(capsys, *argv) -> tuple[int, str, str]:
    """Run ``coderclip ARGV`` in this process; return (exit status, stdout, stderr)."""
    code = main([os.fsdecode(a) if isinstance(a, (bytes, os.PathLike)) else str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_one_clean_line(code: int, err: str, status: int, *names: str) -> None:
    """The failure exits with ``status`` and says so in one line that names each of ``names``,
    with no traceback."""
    assert code == status, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("coderclip ") and ": error: " in lines[-1], err
    for n in names:
        assert n in lines[-1], (n, err)


@pytest.fixture
def classes_file(tmp_path) -> Path:
    p = tmp_path / "classes.txt"
    p.write_text("lime\nlemon\norange\n")
    return p


@pytest.fixture
def unwritable_dir(tmp_path) -> Path:
    """A folder nobody may create files in: a read-only folder, or for root (who ignores file
    permissions) a kernel folder that refuses new files to everyone."""
    if os.geteuid() != 0:
        d = tmp_path / "read-only"
        d.mkdir()
        d.chmod(0o555)
        yield d
        d.chmod(0o755)
        return
    d = Path("/sys/kernel")
    try:
        import tempfile

        fd, probe = tempfile.mkstemp(dir=d)
    except OSError:
        yield d
        return
    os.close(fd)
    os.unlink(probe)
    pytest.fail("no unwritable folder for root on this machine (/sys/kernel accepts files)")


@pytest.fixture
def photo(tmp_path) -> Path:
    import numpy as np
    from PIL import Image

    p = tmp_path / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 40, 3), dtype=np.uint8)).save(p)
    return p
