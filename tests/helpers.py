"""Test helpers that are not fixtures."""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from coderclip.encoders.base import Encoder


class HashEncoder(Encoder):
    """Deterministic stand-in encoder for scorer/bank logic tests: each text maps to a fixed random
    vector seeded by its hash; an image tensor's first ``dim`` values are its embedding."""

    def __init__(self, dim: int = 16, tag: str = "hash"):
        self.embed_dim, self.device, self.dtype = dim, torch.device("cpu"), torch.float32
        self.identity, self.name = f"{tag}-{dim}", f"{tag}-encoder"
        self.preprocess = lambda im: torch.from_numpy(np.asarray(im.resize((8, 8)), dtype=np.float32)).permute(2, 0, 1)
        self.text_calls = 0

    def _encode_text_batch(self, texts):
        self.text_calls += len(texts)
        rows = [np.random.default_rng(int(hashlib.sha256(t.encode()).hexdigest()[:12], 16))
                .standard_normal(self.embed_dim) for t in texts]
        return torch.tensor(np.stack(rows), dtype=torch.float32)

    def _encode_image_batch(self, pixels):
        flat = pixels.flatten(1).float()
        return flat[:, : self.embed_dim] + 1e-3


def damage_file(path, how: str) -> None:
    """Damage a verified safetensors file in place: ``truncate`` cuts it in half, ``flip`` inverts
    a byte of the tensor data near its end (only the checksum notices)."""
    data = bytearray(path.read_bytes())
    if how == "truncate":
        del data[len(data) // 2:]
    elif how == "flip":
        data[-3] ^= 0xFF
    else:
        raise ValueError(how)
    path.write_bytes(bytes(data))


class Killed(Exception):
    """Stands for a run killed part-way (by a signal, a crash, a lost machine)."""


class CountingImages:
    """Mixin for an encoder class: counts the images it embeds (``image_calls``); with
    ``fail_after``, it raises :class:`Killed` rather than embed more than that many."""

    def __init__(self, *a, fail_after: int | None = None, **kw):
        super().__init__(*a, **kw)
        self.image_calls, self.fail_after = 0, fail_after

    def _encode_image_batch(self, pixels):
        if self.fail_after is not None and self.image_calls + pixels.shape[0] > self.fail_after:
            raise Killed
        self.image_calls += pixels.shape[0]
        return super()._encode_image_batch(pixels)


class CountingEncoder(CountingImages, HashEncoder):
    """A :class:`HashEncoder` that counts the images it embeds (see :class:`CountingImages`)."""


def random_knowledge(n_classes: int, seed: int = 0, contrast_neighbours: int = 2):
    """Knowledge with random texts, random list sizes (some empty) and contrasts both ways."""
    from coderclip.knowledge import ClassKnowledge, Knowledge

    rng = np.random.default_rng(seed)
    names = [f"class {i}" for i in range(n_classes)]
    classes = []
    for i, n in enumerate(names):
        classes.append(ClassKnowledge(
            n,
            synonyms=[f"syn {i}.{j}" for j in range(rng.integers(0, 3))],
            attributes=[f"feature {i}.{j}" for j in range(rng.integers(0, 6))],
            analogous=[f"thing {i}.{j}" for j in range(rng.integers(0, 4))],
        ))
    for i in range(n_classes):
        for o in rng.choice([j for j in range(n_classes) if j != i],
                            size=min(contrast_neighbours, n_classes - 1), replace=False):
            o = int(o)
            for a, b in ((i, o), (o, i)):
                if names[b] not in classes[a].contrasts:
                    classes[a].contrasts[names[b]] = [f"cue {a}-{b}.{k}" for k in range(rng.integers(1, 4))]
    return Knowledge(classes, domain="generic")


def write_cache_worker(args):
    """Process entry point for the concurrent-cache test: encode texts through a shared cache."""
    root, identity, texts, seed = args
    from coderclip.bank.cache import TextEmbeddingCache, cached_encode

    enc = HashEncoder(8)
    cache = TextEmbeddingCache(identity, root)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(5):
        subset = list(rng.choice(texts, size=len(texts) // 2, replace=False))
        emb, _ = cached_encode(subset, lambda b: enc.encode_texts(b), cache)
        out.append((subset, emb.numpy()))
    return out
