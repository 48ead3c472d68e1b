"""The README's Python examples run as written.

Every ```python block of README.md is run in order, in one namespace (later blocks use what
earlier ones defined), in a folder holding the files the examples name: ``pizza.jpg``,
``ramen.png``, ``data/val/<class>/`` and ``shots/{train,val,test}/<class>/``. One substitution is
made, because pretrained weights need the network: the model spec in :data:`SUBSTITUTE` is
replaced by the tiny local open_clip model the fixtures save (same code path, random weights).
A block preceded by ``<!-- readme-test: skip REASON -->`` is not run; the test lists such blocks.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).resolve().parents[1] / "README.md"
#: README model spec -> fixture standing in for it
SUBSTITUTE = {"open_clip:ViT-B-32:openai": "open_clip_spec"}
_BLOCK = re.compile(r"(<!-- readme-test: skip (?P<why>[^>]*)-->\s*)?```python\n(?P<code>.*?)```", re.S)


def python_blocks(text: str) -> list[tuple[str, str | None]]:
    """``(code, skip reason or None)`` of every ```python block, in order."""
    return [(m["code"], m["why"].strip() if m["why"] else None) for m in _BLOCK.finditer(text)]


def _photo(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (48, 40, 3), dtype=np.uint8)).save(path)


def test_blocks_are_found():
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 5 and "import coderclip" in blocks[0][0]
    assert [why for _, why in blocks if why] == []   # nothing is skipped today


@pytest.mark.slow
def test_readme_python_blocks_run(tmp_path, monkeypatch, request):
    seed = 0
    for name in ("pizza.jpg", "ramen.png"):
        _photo(tmp_path / name, seed := seed + 1)
    for cls in ("pizza", "ramen"):
        for i in range(2):
            _photo(tmp_path / "data" / "val" / cls / f"{i}.jpg", seed := seed + 1)
        for split, n in (("train", 2), ("val", 1), ("test", 2)):
            for i in range(n):
                _photo(tmp_path / "shots" / split / cls / f"{i}.jpg", seed := seed + 1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for i, (code, why) in enumerate(python_blocks(README.read_text(encoding="utf-8"))):
        if why:
            continue
        for spec, fixture in SUBSTITUTE.items():
            code = code.replace(spec, request.getfixturevalue(fixture))
        try:
            exec(compile(code, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as e:  # say which block failed
            raise AssertionError(f"README python block {i + 1} failed: {type(e).__name__}: {e}\n{code}") from e
    assert (tmp_path / "photos.safetensors").is_file()
    assert (tmp_path / "food101-vitb32" / "coderclip_config.json").is_file()
