"""Zero-shot classifiers with a scikit-learn feel: settings in ``__init__``, work in ``fit``,
``predict`` / ``predict_proba`` / ``top_k`` on images or on precomputed embeddings."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from .encoders.base import Encoder
from .errors import ConfigError
from .images import load_image
from .knowledge import Knowledge, load_knowledge
from .scoring import (DEFAULT_TAU, DEFAULT_TOP_K, CoderTables, RerankResult, clip_scores,
                      heuristic_scores, move_to_front, rerank_top_k)
from .baselines import BaselineTables, prototype_scores
from .bank.textbank import METHOD_TYPES, TextBank

#: method name -> text types its text bank needs
METHODS: dict[str, tuple[str, ...]] = METHOD_TYPES

ImagesLike = Sequence[str | os.PathLike | Image.Image | torch.Tensor] | torch.Tensor


class CoderClassifier:
    """CODER zero-shot classifier (or a plain CLIP baseline, by ``method``).

    Parameters
    ----------
    encoder: a loaded :class:`~coderclip.encoders.Encoder` (``coderclip.load_encoder(...)``).
    knowledge: a :class:`~coderclip.Knowledge`, a knowledge file path or a shipped pack name.
    method: ``"coder-rerank"`` (default), ``"coder"``, ``"clip"``, ``"clip-ensemble"``, or a
        training-free peer from the same knowledge: ``"dclip"``, ``"cupl"``, ``"cupl-templates"``,
        ``"waffle"`` (all random-descriptor sets together); see docs/method.md.
    types: restrict CODER's text types (ablations), e.g. ``("name", "attribute")``.
    rerank_k, tau: rerank candidates K and confidence gap τ (rerank when p1 − p2 < τ).
    cache: reuse text embeddings cached on disk (``True``), or not (``False``).
    """

    def __init__(self, encoder: Encoder, knowledge: Knowledge | str | os.PathLike,
                 method: str = "coder-rerank", types: Sequence[str] | None = None,
                 rerank_k: int = DEFAULT_TOP_K, tau: float = DEFAULT_TAU, batch_size: int = 64,
                 cache: bool = True, show_progress_bar: bool = False):
        self.encoder = encoder
        self.knowledge = knowledge
        self.method = method
        self.types = types
        self.rerank_k = rerank_k
        self.tau = tau
        self.batch_size = batch_size
        self.cache = cache
        self.show_progress_bar = show_progress_bar

    # ------------------------------------------------------------------ fitting
    def fit(self, X=None, y=None) -> CoderClassifier:
        """Build the text bank and scoring tables (zero-shot: ``X`` and ``y`` are ignored)."""
        if self.method not in METHODS:
            raise ConfigError(f"unknown method {self.method!r}; expected one of {', '.join(METHODS)}")
        if not 0.0 <= float(self.tau) <= 1.0:
            raise ConfigError(f"tau must be within [0, 1], got {self.tau}")
        if int(self.rerank_k) < 1:
            raise ConfigError(f"rerank_k must be at least 1, got {self.rerank_k}")
        kn = self.knowledge if isinstance(self.knowledge, Knowledge) else load_knowledge(self.knowledge)
        types = tuple(self.types) if self.types is not None else METHODS[self.method]
        if self.method == "coder-rerank" and "contrast" not in types:
            types = (*types, "contrast")
        self.knowledge_ = kn
        self.classes_ = np.array(kn.class_names, dtype=object)
        self.bank_ = TextBank.build(kn, self.encoder, types=types, cache=self.cache,
                                    show_progress_bar=self.show_progress_bar)
        self.bank_.check_encoder(self.encoder)
        dtype = self.encoder.dtype if self.encoder.device.type != "cpu" else torch.float32
        self.tables_ = CoderTables.from_bank(self.bank_, types=types, device=self.encoder.device,
                                             dtype=dtype)
        if self.method in ("dclip", "cupl", "cupl-templates", "waffle"):
            peers = BaselineTables.from_bank(self.bank_, device=self.encoder.device, dtype=dtype)
            self.prototypes_ = {"dclip": peers.dclip, "cupl": peers.cupl,
                                "cupl-templates": peers.cupl_templates,
                                "waffle": None if peers.waffle is None else peers.waffle.mean(0)
                                }[self.method]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "tables_"):
            self.fit()

    # ------------------------------------------------------------------ embeddings
    def encode(self, images: ImagesLike) -> torch.Tensor:
        """Unit image embeddings ``[N, D]`` for paths, PIL images or preprocessed tensors."""
        if isinstance(images, (str, os.PathLike)):
            images = [images]
        loaded = [load_image(im) if isinstance(im, (str, os.PathLike)) else im for im in images] \
            if not isinstance(images, torch.Tensor) else images
        return self.encoder.encode_images(loaded, batch_size=self.batch_size,
                                          show_progress_bar=self.show_progress_bar)

    def _embeddings(self, images: ImagesLike | None, embeddings) -> torch.Tensor:
        if (images is None) == (embeddings is None):
            raise ConfigError("pass exactly one of images or embeddings")
        self._check_fitted()
        if embeddings is not None:
            x = torch.as_tensor(embeddings, dtype=torch.float32)
            if x.ndim != 2 or x.shape[1] != self.bank_.embed_dim:
                raise ConfigError(f"embeddings must have shape [N, {self.bank_.embed_dim}], "
                                  f"got {tuple(x.shape)}")
            x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
            return x.to(self.tables_.group_sum.device)
        return self.encode(images).to(self.tables_.group_sum.device)

    # ------------------------------------------------------------------ scoring
    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        if self.method == "clip":
            return clip_scores(x, self.tables_)
        if self.method == "clip-ensemble":
            return clip_scores(x, self.tables_, ensemble=True)
        if self.method in ("dclip", "cupl", "cupl-templates", "waffle"):
            return prototype_scores(x, self.prototypes_)
        return heuristic_scores(x, self.tables_)

    def _rerank(self, x: torch.Tensor, scores: torch.Tensor) -> RerankResult | None:
        if self.method != "coder-rerank":
            return None
        return rerank_top_k(x, scores, self.tables_, top_k=self.rerank_k, tau=self.tau)

    def decision_function(self, images: ImagesLike | None = None, *, embeddings=None) -> np.ndarray:
        """Stage-1 scores ``[N, C]`` (×100 cosine scale); the rerank only reorders the top K."""
        return self._scores(self._embeddings(images, embeddings)).cpu().numpy()

    def predict_proba(self, images: ImagesLike | None = None, *, embeddings=None) -> np.ndarray:
        """Softmax of the stage-1 scores ``[N, C]``."""
        s = self._scores(self._embeddings(images, embeddings))
        return torch.softmax(s, dim=1).cpu().numpy()

    def predict(self, images: ImagesLike | None = None, *, embeddings=None) -> np.ndarray:
        """Predicted class names ``[N]`` (use :meth:`predict_index` for label indices)."""
        return self.classes_[self.predict_index(images, embeddings=embeddings)]

    def predict_index(self, images: ImagesLike | None = None, *, embeddings=None) -> np.ndarray:
        x = self._embeddings(images, embeddings)
        s = self._scores(x)
        rr = self._rerank(x, s)
        pred = rr.prediction if rr is not None else s.argmax(dim=1)
        return pred.cpu().numpy()

    def top_k(self, images: ImagesLike | None = None, *, embeddings=None, k: int = 5
              ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` class indices ``[N, k]`` (best first) and their probabilities ``[N, k]``.

        With the rerank, the rerank winner is moved to the front of the stage-1 top K.
        """
        x = self._embeddings(images, embeddings)
        s = self._scores(x)
        p = torch.softmax(s, dim=1)
        k = min(k, s.shape[1])
        idx = p.topk(k, dim=1).indices
        rr = self._rerank(x, s)
        if rr is not None:
            idx = move_to_front(rr.prediction, idx)
        return idx.cpu().numpy(), torch.gather(p, 1, idx).cpu().numpy()

    def score(self, images: ImagesLike | None = None, y=None, *, embeddings=None) -> float:
        """Top-1 accuracy against ``y`` (class names or indices)."""
        pred = self.predict_index(images, embeddings=embeddings)
        y = np.asarray(y)
        if y.dtype.kind in "US" or y.dtype == object:
            lookup = {n: i for i, n in enumerate(self.classes_)}
            y = np.array([lookup[v] for v in y])
        return float((pred == y).mean())
