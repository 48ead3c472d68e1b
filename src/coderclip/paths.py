"""Where coderclip keeps its files (no heavy imports: used by the CLI and the ATG too)."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "CODERCLIP_CACHE"


def cache_dir() -> Path:
    """Root of coderclip's caches: ``$CODERCLIP_CACHE``, else ``$XDG_CACHE_HOME/coderclip``, else
    ``~/.cache/coderclip``."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "coderclip"
