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
                      cosine_logits, heuristic_scores, probabilities, rerank_top_k,
                      top_k_probabilities)
from .baselines import BaselineTables
from .bank.textbank import METHOD_TYPES, TextBank

#: method name -> text types its text bank needs
METHODS: dict[str, tuple[str, ...]] = METHOD_TYPES

#: Methods that score a class by one cosine to one class embedding (the name prompt, the ensemble
#: mean or a baseline's prototype), so the model's own logit scale applies.
PROTOTYPE_METHODS = ("dclip", "cupl", "cupl-templates", "waffle")
CLIP_FAMILY = ("clip", "clip-ensemble", *PROTOTYPE_METHODS)

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
    templates: replace the domain's prompt templates: a file (one ensemble template per line, or
    JSON per text type), a list of ensemble templates or a mapping per text type (see
    :func:`~coderclip.knowledge.templates.load_templates`).

    Probabilities: the CLIP baselines (and the peers DCLIP, CuPL, WaffleCLIP, which are CLIP
    with other class embeddings) use the model's own learned scale (``encoder.logit_scale``,
    and for SigLIP its bias with a per-class sigmoid), as open_clip and the transformers
    zero-shot pipeline do. CODER's stage-1 score already carries the paper's fixed ×100 scale; its
    probabilities are the softmax of that score, the one the rerank's confidence gap τ is defined
    on. With the rerank, the candidates' probabilities are handed out in the reranked order
    (the winner gets the largest), so the ranking and its numbers always agree.
    """

    def __init__(self, encoder: Encoder, knowledge: Knowledge | str | os.PathLike,
                 method: str = "coder-rerank", types: Sequence[str] | None = None,
                 rerank_k: int = DEFAULT_TOP_K, tau: float = DEFAULT_TAU, batch_size: int = 64,
                 cache: bool = True, show_progress_bar: bool = False, templates=None):
        self.encoder = encoder
        self.knowledge = knowledge
        self.method = method
        self.types = types
        self.rerank_k = rerank_k
        self.tau = tau
        self.batch_size = batch_size
        self.cache = cache
        self.show_progress_bar = show_progress_bar
        self.templates = templates

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
                                    show_progress_bar=self.show_progress_bar,
                                    templates=self.templates)
        self.bank_.check_encoder(self.encoder)
        dtype = self.encoder.dtype if self.encoder.device.type != "cpu" else torch.float32
        self.tables_ = CoderTables.from_bank(self.bank_, types=types, device=self.encoder.device,
                                             dtype=dtype)
        clip = self.method in CLIP_FAMILY
        self.logit_scale_ = float(self.encoder.logit_scale) if clip else 1.0
        self.logit_bias_ = float(self.encoder.logit_bias) if clip else 0.0
        self.probability_ = self.encoder.probability if clip else "softmax"
        if self.method in PROTOTYPE_METHODS:
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
        if self.method.startswith("clip"):
            return clip_scores(x, self.tables_, ensemble=self.method == "clip-ensemble",
                               logit_scale=self.logit_scale_, logit_bias=self.logit_bias_)
        if self.method in PROTOTYPE_METHODS:
            return cosine_logits(x, self.prototypes_, self.logit_scale_, self.logit_bias_)
        return heuristic_scores(x, self.tables_)

    def _rerank(self, x: torch.Tensor, scores: torch.Tensor) -> RerankResult | None:
        if self.method != "coder-rerank":
            return None
        return rerank_top_k(x, scores, self.tables_, top_k=self.rerank_k, tau=self.tau)

    def decision_function(self, images: ImagesLike | None = None, *, embeddings=None) -> np.ndarray:
        """Stage-1 logits ``[N, C]``: the model's ``logit_scale · cos + logit_bias`` for the CLIP
        baselines, CODER's ×100 score otherwise; the rerank only reorders the top K."""
        return self._scores(self._embeddings(images, embeddings)).cpu().numpy()

    def predict_proba(self, images: ImagesLike | None = None, *, embeddings=None) -> np.ndarray:
        """Class probabilities ``[N, C]`` (see the class docstring): softmax of the stage-1 logits
        (sigmoid for SigLIP), with the rerank candidates' values in the reranked order."""
        x = self._embeddings(images, embeddings)
        s = self._scores(x)
        p = probabilities(s, self.probability_)
        rr = self._rerank(x, s)
        if rr is not None:
            rr.reorder_probabilities(p)
        return p.cpu().numpy()

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
        """Top ``k`` class indices ``[N, k]`` (best first) and their probabilities ``[N, k]``
        (non-increasing along each row).

        With the rerank, the rerank winner is moved to the front of the stage-1 top K and the
        stage-1 probabilities keep their places: rank 1 shows the largest, whichever class the
        rerank put there (as :meth:`predict_proba`).
        """
        x = self._embeddings(images, embeddings)
        s = self._scores(x)
        idx, p = top_k_probabilities(s, k, self.probability_, self._rerank(x, s))
        return idx.cpu().numpy(), p.cpu().numpy()

    def score(self, images: ImagesLike | None = None, y=None, *, embeddings=None) -> float:
        """Top-1 accuracy against ``y`` (class names or indices)."""
        pred = self.predict_index(images, embeddings=embeddings)
        y = np.asarray(y)
        if y.dtype.kind in "US" or y.dtype == object:
            lookup = {n: i for i, n in enumerate(self.classes_)}
            y = np.array([lookup[v] for v in y])
        return float((pred == y).mean())
