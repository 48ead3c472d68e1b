"""WaffleCLIP-style random descriptors: word and character noise that stands in for a description.

WaffleCLIP (Roth et al., 2023) asks how much of the gain of LLM descriptions comes from their
meaning and how much from averaging many prompts: it appends random words or random character
strings to the class-name prompt and averages over them. coderclip uses the same noise for the
WaffleCLIP baseline and for the "noise" row of the CODER ablation (CODER with its descriptions
replaced by noise). The same descriptors serve every class of a run (as in WaffleCLIP), one set
per seed; they depend only on the seed, so every run, machine and version draws the same ones.
"""

from __future__ import annotations

import functools
import gzip
import importlib.util
import random
import re
import string
from pathlib import Path

#: seeds of the descriptor sets (results are reported as mean ± std over them)
WAFFLE_SEEDS = (0, 1, 2, 3, 4)
#: random descriptors per set (about as many as a class has attributes and look-alikes)
WAFFLE_COUNT = 16
NOISE_VERSION = "coderclip-noise-1"

_WORD = re.compile(r"^[a-z]{4,10}$")
_CLIP_MERGES = 49152 - 256 - 2  # the merges CLIP's tokenizer uses: its more frequent words


@functools.lru_cache(maxsize=1)
def vocabulary() -> tuple[str, ...]:
    """Whole English-like words (4-10 letters) of the CLIP BPE vocabulary shipped with open_clip,
    sorted; empty when open_clip is not installed (then only character noise is drawn)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return ()
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        return ()
    words = set()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        next(f, None)  # version line
        for _, line in zip(range(_CLIP_MERGES), f):
            a, _, b = line.rstrip("\n").partition(" ")
            token = a + b
            if token.endswith("</w>") and _WORD.match(token[:-4]):
                words.add(token[:-4])
    return tuple(sorted(words))


def random_descriptors(seed: int, count: int = WAFFLE_COUNT) -> list[str]:
    """``count`` random descriptors for ``seed``: half pairs of random words ("lantern orbit"),
    half pairs of random letter strings ("qfzk wmeab")."""
    rng = random.Random(f"{NOISE_VERSION}:{seed}")
    words = vocabulary()
    out: list[str] = []
    for i in range(count):
        if i % 2 == 0 and words:
            out.append(" ".join(rng.choice(words) for _ in range(2)))
        else:
            out.append(" ".join("".join(rng.choice(string.ascii_lowercase)
                                        for _ in range(rng.randint(3, 8))) for _ in range(2)))
    return out
