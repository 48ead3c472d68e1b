"""Few-shot adapters with a scikit-learn feel: settings in ``__init__``, ``fit`` on support (and
validation) embeddings, then ``predict`` / ``predict_proba`` / ``decision_function`` / ``score``.

Inputs are unit image embeddings (``[N, D]`` tensors or arrays, e.g. from
:func:`coderclip.fewshot.support_features` and :meth:`coderclip.encoders.Encoder.encode_images`)
and integer labels. Nothing here reads images, so the adapters run on precomputed features too.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import torch

from ..errors import ConfigError
from ..estimator import EstimatorMixin, check_is_fitted
from .cache_model import CacheModel, CoderSpace, KeySpace, identity_space, normalize_rows
from .defaults import DEFAULT_ALPHA, DEFAULT_BETA
from .search import SearchResult, SearchSpace, search_alpha_beta


#: Validation affinities and logits are precomputed up to this many numbers (1 GiB in float32).
VAL_ROWS_ELEMS = 1 << 28


def _as_unit(x, name: str, dim: int | None = None, device: torch.device | None = None) -> torch.Tensor:
    t = torch.as_tensor(x)
    if t.ndim != 2 or (dim is not None and t.shape[1] != dim):
        want = f"[N, {dim}]" if dim is not None else "[N, D]"
        raise ConfigError(f"{name} must have shape {want}, got {tuple(t.shape)}")
    t = t.to(device=device if device is not None else t.device, dtype=torch.float32)
    return normalize_rows(t)


def _as_labels(y, n: int, n_classes: int, name: str, device: torch.device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(y) if not isinstance(y, torch.Tensor) else y)
    if t.shape != (n,) or t.is_floating_point():
        raise ConfigError(f"{name} must be {n} integer class indices, got shape {tuple(t.shape)} "
                          f"({t.dtype})")
    if n and (int(t.min()) < 0 or int(t.max()) >= n_classes):
        raise ConfigError(f"{name} must lie in [0, {n_classes}), got {int(t.min())}..{int(t.max())}")
    return t.to(device=device, dtype=torch.long)


class CacheAdapter(EstimatorMixin):
    """Training-free cache adapter (the shared machinery of :class:`TipAdapter` and
    :class:`CoderAdapter`).

    Parameters
    ----------
    zero_shot_weights: ``[C, D]`` CLIP zero-shot classifier W (one unit row per class).
    alpha, beta: fixed values, or ``None`` to choose them on the validation data given to
        :meth:`fit` (one may be fixed while the other is searched). The validation-free setting is
        ``alpha=DEFAULT_ALPHA, beta=DEFAULT_BETA`` (see :meth:`validation_free`).
    search: the grid (:class:`SearchSpace`); default coarse grid plus refinement.
    key_dtype: storage precision of the keys: ``auto`` (float16 on GPU/MPS for keys over 256 MiB,
        else float32), ``float32``, ``float16`` or ``bfloat16``.
    chunk_size: query images per block when predicting (bounds memory at ``chunk_size × S``).

    Fitted attributes: ``cache_`` (:class:`CacheModel`), ``alpha_``, ``beta_``, ``search_``
    (:class:`SearchResult` or ``None``), ``n_classes_``, ``classes_``, ``timings_`` (seconds spent
    building the keys, the validation affinities and the search).
    """

    #: Short method name used in reports.
    method: ClassVar[str] = "cache"
    #: Row-wise min–max normalisation of the affinities.
    minmax: ClassVar[bool] = False

    def __init__(self, zero_shot_weights, *, alpha: float | None = None, beta: float | None = None,
                 search: SearchSpace | None = None, key_dtype: str | torch.dtype = "auto",
                 chunk_size: int = 2048):
        self.zero_shot_weights = zero_shot_weights
        self.alpha = alpha
        self.beta = beta
        self.search = search
        self.key_dtype = key_dtype
        self.chunk_size = chunk_size

    @classmethod
    def validation_free(cls, *args, **kwargs) -> CacheAdapter:
        """An adapter with the fixed default α, β (no validation data needed)."""
        kwargs.setdefault("alpha", DEFAULT_ALPHA)
        kwargs.setdefault("beta", DEFAULT_BETA)
        return cls(*args, **kwargs)

    def _key_space(self) -> KeySpace:
        return identity_space

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha}, beta={self.beta})"

    # ------------------------------------------------------------------ fitting
    def fit(self, support, support_labels, val=None, val_labels=None) -> CacheAdapter:
        """Build the cache from support embeddings ``[S, D]`` and labels ``[S]``; choose α, β on
        ``val`` ``[N, D]`` / ``val_labels`` ``[N]`` unless both are fixed."""
        w = torch.as_tensor(self.zero_shot_weights)
        if w.ndim != 2 or w.shape[0] == 0:
            raise ConfigError(f"zero_shot_weights must be a [C, D] matrix, got {tuple(w.shape)}")
        c, d = w.shape
        support = _as_unit(support, "support embeddings", d)
        dev = support.device
        self.weights_ = normalize_rows(w.to(dev, torch.float32))
        self.n_classes_ = int(c)
        self.classes_ = np.arange(c)
        y = _as_labels(support_labels, support.shape[0], c, "support labels", dev)
        t0 = time.perf_counter()
        self.space_ = self._key_space()
        self.cache_ = CacheModel.build(support, y, c, minmax=self.minmax, space=self.space_,
                                       key_dtype=self.key_dtype)
        self.timings_ = {"keys": time.perf_counter() - t0}
        self.search_: SearchResult | None = None
        alpha, beta = self.alpha, self.beta
        if alpha is None or beta is None:
            if val is None or val_labels is None:
                raise ConfigError(
                    f"{type(self).__name__}: alpha and beta are searched on validation data, but "
                    f"none was given; pass val and val_labels to fit, or fix them (e.g. "
                    f"alpha={DEFAULT_ALPHA}, beta={DEFAULT_BETA}, the validation-free setting)")
            xv = _as_unit(val, "validation embeddings", d, dev)
            yv = _as_labels(val_labels, xv.shape[0], c, "validation labels", dev)
            space = (self.search or SearchSpace()).fixing(alpha, beta)
            t0 = time.perf_counter()
            aff, zs = self._validation_rows(xv)
            self.timings_["val_affinity"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            self.search_ = search_alpha_beta(self.cache_, zs, aff, yv, space)
            self.timings_["search"] = time.perf_counter() - t0
            alpha, beta = self.search_.alpha, self.search_.beta
        self.alpha_, self.beta_ = float(alpha), float(beta)
        return self

    def _validation_rows(self, xv: torch.Tensor):
        """Affinities ``[N, S]`` and zero-shot logits ``[N, C]`` of the validation queries: held
        whole when they fit in :data:`VAL_ROWS_ELEMS` numbers, else functions that compute a
        block of rows on demand (the search then recomputes them per grid pass, in bounded
        memory: 16 shots on 21k classes would otherwise need over 100 GB)."""
        n, s, c = xv.shape[0], self.cache_.n_support, self.n_classes_
        if n * (s + c) <= VAL_ROWS_ELEMS:
            return self.cache_.affinity(xv), self._zero_shot(xv)
        return (lambda i, j: self.cache_.affinity(xv[i:j])), (lambda i, j: self._zero_shot(xv[i:j]))

    def _check_fitted(self) -> None:
        check_is_fitted(self, "cache_")

    # ------------------------------------------------------------------ scoring
    def _zero_shot(self, x: torch.Tensor) -> torch.Tensor:
        return 100.0 * (x @ self.weights_.T)

    def _blocks(self, x):
        self._check_fitted()
        x = _as_unit(x, "embeddings", self.weights_.shape[1], self.weights_.device)
        for i in range(0, x.shape[0], self.chunk_size):
            xi = x[i:i + self.chunk_size]
            yield self._zero_shot(xi), self.cache_.affinity(xi)

    def _logits(self, x):
        """Logits of each block ``[≤ chunk_size, C]`` (float32 tensors)."""
        for zs, aff in self._blocks(x):
            yield self.cache_.logits(zs, aff, self.alpha_, self.beta_)

    def _collect(self, x, fn) -> np.ndarray:
        """``fn`` of every block's logits, concatenated (one block in memory at a time)."""
        self._check_fitted()
        parts = [fn(lg).cpu().numpy() for lg in self._logits(x)]
        return np.concatenate(parts) if parts else fn(torch.empty(0, self.n_classes_)).numpy()

    def decision_function(self, x) -> np.ndarray:
        """Logits ``[N, C]`` (float32 array): 100 · x̂W + α · exp(−β(1 − Ã)) L."""
        return self._collect(x, lambda lg: lg.float())

    def predict(self, x) -> np.ndarray:
        """Class indices ``[N]`` (int64)."""
        return self._collect(x, lambda lg: lg.argmax(1))

    def predict_proba(self, x) -> np.ndarray:
        """Softmax of the logits ``[N, C]`` (float32 array)."""
        return self._collect(x, lambda lg: torch.softmax(lg.float(), dim=1))

    def predict_settings(self, x, settings: Sequence[tuple[float, float]]) -> np.ndarray:
        """Class indices ``[P, N]`` for several (α, β) settings, sharing one affinity pass."""
        out: list[list[torch.Tensor]] = [[] for _ in settings]
        for zs, aff in self._blocks(x):
            for k, (a, b) in enumerate(settings):
                out[k].append(self.cache_.logits(zs, aff, float(a), float(b)).argmax(1).cpu())
        return np.stack([torch.cat(p).numpy() if p else np.empty(0, np.int64) for p in out])

    def score(self, x, y) -> float:
        """Top-1 accuracy (fraction) against class indices ``y``."""
        self._check_fitted()
        pred = self.predict(x)
        y = np.asarray(y)
        if y.shape != pred.shape:
            raise ConfigError(f"y has shape {y.shape} for {len(pred)} embeddings")
        return float((pred == y).mean())


class TipAdapter(CacheAdapter):
    """Tip-Adapter (training-free): raw image embeddings as keys, no min–max normalisation."""

    method = "tip-adapter"
    minmax = False

    @classmethod
    def from_tables(cls, tables, **kwargs) -> TipAdapter:
        """An adapter whose W is the bank's template ensemble (or name prompt)."""
        return cls(zero_shot_classifier(tables), **kwargs)


class CoderAdapter(CacheAdapter):
    """CODER-Adapter: keys are normalised CODER vectors φ(x) over the text bank's general texts
    (name, attribute, analogous), affinities min–max normalised per query.

    ``coder_axes`` ``[K, D]``: unit text embeddings (``CoderTables.general_emb``), or a
    :class:`~coderclip.fewshot.cache_model.CoderSpace` built from them (to share it between fits).
    ``compress``: use the isometric D-dimensional form of φ (same affinities, far less memory and
    time when K > D; see :class:`~coderclip.fewshot.cache_model.CoderSpace`).
    """

    method = "coder-adapter"
    minmax = True

    def __init__(self, zero_shot_weights, coder_axes, *, compress: bool = True, **kwargs):
        super().__init__(zero_shot_weights, **kwargs)
        self.coder_axes = coder_axes
        self.compress = compress

    @classmethod
    def from_tables(cls, tables, **kwargs) -> CoderAdapter:
        """An adapter from :class:`~coderclip.scoring.CoderTables` built with the types
        ("name", "attribute", "analogous") and, for W, "ensemble"."""
        return cls(zero_shot_classifier(tables), tables.general_emb, **kwargs)

    def _key_space(self) -> KeySpace:
        if isinstance(self.coder_axes, CoderSpace):   # built once, shared by several fits
            return self.coder_axes
        axes = torch.as_tensor(self.coder_axes).to(self.weights_.device)
        if axes.ndim != 2 or axes.shape[1] != self.weights_.shape[1]:
            raise ConfigError(f"coder_axes must have shape [K, {self.weights_.shape[1]}], got "
                              f"{tuple(axes.shape)}")
        return CoderSpace(axes, compress=self.compress)


def zero_shot_classifier(tables) -> torch.Tensor:
    """W ``[C, D]``: the template-ensemble class embeddings when the bank has them, else the name
    prompts."""
    return tables.ensemble_emb if tables.ensemble_emb is not None else tables.prompt_emb


#: method name -> adapter class
ADAPTERS: dict[str, type[CacheAdapter]] = {TipAdapter.method: TipAdapter,
                                           CoderAdapter.method: CoderAdapter}
