"""The key–value cache shared by Tip-Adapter and CODER-Adapter (docs/method.md §6).

Both adapters score a query x against S support images with

    A = q̂ K̂ᵀ                         q̂, K̂: unit-norm query and key features
    Ã = minmax_rows(A) or A           CODER-Adapter normalises each row to [0, 1]; Tip-Adapter does not
    cache = exp(−β (1 − Ã)) L          L: one-hot support labels [S, C]
    logits = 100 · x̂ W + α · cache

and differ only in the key space: raw image embeddings (Tip-Adapter) or CODER vectors
φ(x) = x̂ Tᵀ (CODER-Adapter, :class:`CoderSpace`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import ConfigError

#: Cap on elements of one temporary key block (keys upcast for a matmul, or one affinity block).
_BLOCK_ELEMS = 1 << 25
#: ``key_dtype='auto'`` stores keys in half precision on accelerators above this size.
_HALF_KEYS_ABOVE_BYTES = 256 << 20

KeySpace = Callable[[torch.Tensor], torch.Tensor]


def normalize_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def minmax_rows(a: torch.Tensor) -> torch.Tensor:
    """Row-wise min–max normalisation of affinities ``[N, S]`` to [0, 1].

    A row whose entries are all equal (its spread within a few float roundings of its magnitude,
    which includes a single support image) becomes all ones: every support image is then "the
    nearest", which is what the maximum maps to in any other row. Never produces NaN for finite input.
    """
    return minmax_rows_(a.clone())


def minmax_rows_(a: torch.Tensor) -> torch.Tensor:
    """In-place :func:`minmax_rows` (no temporary as large as ``a``)."""
    lo = a.amin(dim=-1, keepdim=True)
    hi = a.amax(dim=-1, keepdim=True)
    span = hi - lo
    eps = torch.finfo(a.dtype).eps
    flat = span <= 4 * eps * torch.maximum(hi.abs(), lo.abs()).clamp_min(1.0)
    a.sub_(lo).div_(torch.where(flat, torch.ones_like(span), span))
    return a.masked_fill_(flat, 1.0)


class CoderSpace:
    """The CODER key space: maps unit image embeddings ``[N, D]`` to CODER vectors.

    ``axes`` ``[K, D]`` are the unit embeddings of the general texts (name, attribute, analogous),
    so φ(x) = x Tᵀ ``[N, K]``. The cache only ever uses inner products and norms of φ, and
    φ(x)·φ(y) = x (TᵀT) yᵀ, so when K > D we map instead to φ̃(x) = x V Λ^½ R ``[N, D]``, where
    TᵀT = V Λ Vᵀ and R is a fixed random rotation. φ̃ preserves every inner product and norm of φ
    (to float rounding) and therefore gives the same affinities, at D numbers per image instead of
    K. R spreads φ's dominant common direction (all CODER vectors point roughly the same way) over
    all coordinates, which halves the effect of half-precision rounding on the affinities.
    ``compress=False`` keeps the explicit form. The decomposition runs on the CPU in float64.
    """

    def __init__(self, axes: torch.Tensor, compress: bool = True):
        if axes.ndim != 2 or axes.shape[0] == 0:
            raise ConfigError(f"CODER axes must be a non-empty [K, D] matrix, got {tuple(axes.shape)}")
        k, d = axes.shape
        self.n_texts = int(k)
        self.compressed = bool(compress and k > d)
        if self.compressed:
            t = axes.detach().to("cpu", torch.float64)
            evals, evecs = torch.linalg.eigh(t.T @ t)
            proj = evecs * evals.clamp_min(0.0).sqrt()
            g = torch.Generator().manual_seed(0)
            rot, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
            self.projection = (proj @ rot).to(axes.device, torch.float32)
        else:
            self.projection = axes.detach().to(torch.float32).T.contiguous()

    @property
    def dim(self) -> int:
        return int(self.projection.shape[1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """φ(x) ``[N, K]`` (explicit) or its isometric compression ``[N, D]``; not normalised."""
        p = self.projection.to(x.device)
        return x.to(torch.float32) @ p


def identity_space(x: torch.Tensor) -> torch.Tensor:
    """Tip-Adapter's key space: the image embeddings themselves."""
    return x.to(torch.float32)


def resolve_key_dtype(key_dtype: str | torch.dtype, device: torch.device, numel: int = 0) -> torch.dtype:
    """Storage precision of the keys.

    ``auto``: float16 on accelerators when float32 keys would pass 256 MiB (the explicit CODER
    vectors of a large support set), float32 otherwise. float32 on CPU, where half matmul is
    slower than float32, and for small keys, where half precision saves little and its rounding
    is amplified by the min–max normalisation (about 6e-4 on Ã for D-dimensional keys, against
    2e-6 in float32).
    """
    if isinstance(key_dtype, torch.dtype):
        return key_dtype
    table = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16,
             "fp16": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}
    if key_dtype == "auto":
        big = numel * 4 > _HALF_KEYS_ABOVE_BYTES
        return torch.float16 if device.type != "cpu" and big else torch.float32
    try:
        return table[key_dtype]
    except KeyError:
        raise ConfigError(f"invalid key dtype {key_dtype!r}; expected auto, float32, float16 or "
                          "bfloat16") from None


class ClassIndex:
    """Support labels ``[S]`` (sorted by class) and a fast per-class sum over the support axis."""

    def __init__(self, labels: torch.Tensor, n_classes: int):
        self.labels = labels
        self.n_classes = int(n_classes)
        counts = torch.bincount(labels, minlength=self.n_classes)
        self.counts = counts
        # Equal shots per class and labels sorted: the sum is a reshape, not a scatter.
        balanced = bool((counts == counts[0]).all()) and int(counts[0]) > 0
        ordered = bool((labels[1:] >= labels[:-1]).all())
        self.shots = int(counts[0]) if balanced and ordered else None

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        """``values`` ``[..., S]`` summed per class ``[..., C]`` (the product with L)."""
        if self.shots is not None:
            return values.reshape(*values.shape[:-1], self.n_classes, self.shots).sum(-1)
        out = values.new_zeros(*values.shape[:-1], self.n_classes)
        return out.index_add_(values.ndim - 1, self.labels.to(values.device), values)


class CacheModel:
    """Keys (unit features of the support images in a key space, sorted by class) with their
    labels.

    ``space`` maps image embeddings ``[n, D]`` to key-space features ``[n, F]`` (identity for
    Tip-Adapter, :class:`CoderSpace` for CODER-Adapter); it is applied block by block, so neither
    the support set nor a batch of queries is ever held whole in the key space in float32.
    ``keys`` ``[S, F]`` are stored in ``key_dtype``; affinities are computed in blocks so that no
    temporary holds more than about 32 M numbers, and returned in float32.
    """

    def __init__(self, keys: torch.Tensor, labels: torch.Tensor, n_classes: int, *, minmax: bool,
                 space: KeySpace = identity_space):
        self.keys = keys
        self.index = ClassIndex(labels, n_classes)
        self.minmax = minmax
        self.space = space

    @classmethod
    def build(cls, support: torch.Tensor, labels: torch.Tensor, n_classes: int, *, minmax: bool,
              space: KeySpace = identity_space, key_dtype: str | torch.dtype = "auto") -> CacheModel:
        """A cache from support embeddings ``[S, D]`` and labels ``[S]``: keys are
        normalise(space(support))."""
        labels = torch.as_tensor(labels, dtype=torch.long, device=support.device)
        if support.ndim != 2 or support.shape[0] == 0:
            raise ConfigError("the support set must be a non-empty [S, D] matrix, got "
                              f"{tuple(support.shape)}")
        if labels.shape != (support.shape[0],):
            raise ConfigError(f"{support.shape[0]} support images but labels of shape {tuple(labels.shape)}")
        if int(labels.min()) < 0 or int(labels.max()) >= n_classes:
            raise ConfigError(f"support labels must lie in [0, {n_classes}), got "
                              f"{int(labels.min())}..{int(labels.max())}")
        order = torch.argsort(labels, stable=True)
        s = support.shape[0]
        first = space(support[order[:1]])
        f = first.shape[1]
        dtype = resolve_key_dtype(key_dtype, support.device, s * f)
        keys = torch.empty(s, f, dtype=dtype, device=support.device)
        rows = max(1, _BLOCK_ELEMS // max(1, f))
        for i in range(0, s, rows):
            keys[i:i + rows] = normalize_rows(space(support[order[i:i + rows]]).to(torch.float32)).to(dtype)
        return cls(keys, labels[order], n_classes, minmax=minmax, space=space)

    @property
    def n_support(self) -> int:
        return int(self.keys.shape[0])

    @property
    def n_classes(self) -> int:
        return self.index.n_classes

    def nbytes(self) -> int:
        return self.keys.numel() * self.keys.element_size()

    def affinity(self, queries: torch.Tensor) -> torch.Tensor:
        """Ã ``[N, S]`` (float32) for query embeddings ``[N, D]`` (mapped to the key space and
        normalised here): cosine similarity to every key, min–max normalised per row when the
        cache says so."""
        n, s = queries.shape[0], self.n_support
        keys = self.keys
        half_ok = keys.device.type != "cpu" and keys.dtype != torch.float32
        out = torch.empty(n, s, dtype=torch.float32, device=queries.device)
        f = keys.shape[1]
        rows = max(1, _BLOCK_ELEMS // max(1, s, f))      # queries per block: [rows, S], [rows, F]
        cols = max(1, _BLOCK_ELEMS // max(1, f))         # keys per block: [cols, F] upcast
        for i in range(0, n, rows):
            qi = normalize_rows(self.space(queries[i:i + rows]).to(torch.float32))
            qi = qi.to(keys.dtype) if half_ok else qi
            for j in range(0, s, cols):
                kj = keys[j:j + cols]
                kj = kj if half_ok else kj.to(torch.float32)
                out[i:i + rows, j:j + cols] = (qi @ kj.T).to(torch.float32)
        return minmax_rows_(out) if self.minmax else out

    def evidence(self, affinity: torch.Tensor, beta: float | torch.Tensor) -> torch.Tensor:
        """Per-class cache evidence exp(−β (1 − Ã)) L: ``[N, C]`` for a scalar β, ``[B, N, C]``
        for a vector of B values. One temporary of ``[B, N, S]`` numbers."""
        b = torch.as_tensor(beta, dtype=torch.float32, device=affinity.device)
        shift = affinity - 1.0
        if b.ndim == 0:
            return self.index.sum(shift.mul_(b).exp_())
        return self.index.sum((b[:, None, None] * shift[None]).exp_())

    def logits(self, zero_shot: torch.Tensor, affinity: torch.Tensor, alpha: float,
               beta: float) -> torch.Tensor:
        """``zero_shot`` ``[N, C]`` (100 · x̂W) plus α times the cache evidence."""
        if not (math.isfinite(alpha) and math.isfinite(beta)):
            raise ConfigError(f"alpha and beta must be finite, got {alpha}, {beta}")
        return zero_shot + alpha * self.evidence(affinity, beta)
