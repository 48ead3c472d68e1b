"""Zero-shot classifiers with a scikit-learn feel: settings in ``__init__``, work in ``fit``,
``predict`` / ``predict_proba`` / ``top_k`` on images or on precomputed embeddings.

Every method streams its input through the batch functions of :mod:`coderclip.pipeline`, so
memory holds one batch of ``[n, C]`` scores whatever the number of images. Outputs that are
``[N]`` or ``[N, k]`` (``predict``, ``top_k``) are small; ``predict_proba`` and
``decision_function`` are ``[N, C]`` by definition (1M images × 21k classes is 84 GB in float32):
for such sizes use ``top_k``, or pass ``out=`` a memory-mapped array
(``np.lib.format.open_memmap(path, "w+", np.float32, (N, C))``) that is filled batch by batch.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .baselines import BaselineTables
from .bank.textbank import METHOD_TYPES, TextBank
from .encoders.base import Encoder
from .errors import ConfigError
from .estimator import EstimatorMixin, check_is_fitted
from .explain import ExplainIndex, class_text_shares, contrast_text_shares, shares_to_dicts
from .images import load_image
from .knowledge import Knowledge, load_knowledge
from .pipeline import (SCORE_BATCH, predict_batch, proba_batch, rerank, row_batches,
                       stage1_scores, top_k_batch)
from .scoring import DEFAULT_TAU, DEFAULT_TOP_K, CoderTables

#: method name -> text types its text bank needs
METHODS: dict[str, tuple[str, ...]] = METHOD_TYPES
#: the training-free peers: class-prototype classifiers (coderclip/baselines.py), scored by the
#: pipeline's CLIP path with their prototypes in place of the name prompts
PROTOTYPE_METHODS = ("dclip", "cupl", "cupl-templates", "waffle")

ImagesLike = Sequence[str | os.PathLike | Image.Image | torch.Tensor] | torch.Tensor


class CoderClassifier(EstimatorMixin):
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
    batch_size: images per batch through the image tower.
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

    Using a classifier before :meth:`fit` raises :class:`~coderclip.errors.NotFittedError`.
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
        bank = TextBank.build(kn, self.encoder, types=self._types(), cache=self.cache,
                              show_progress_bar=self.show_progress_bar, templates=self.templates)
        bank.check_encoder(self.encoder)
        enc = self.encoder
        self._fit_tables(kn, bank, enc.device, enc.dtype if enc.device.type != "cpu" else torch.float32,
                         (enc.logit_scale, enc.logit_bias, enc.probability))
        return self

    def _fit_tables(self, kn: Knowledge, bank: TextBank, device: torch.device, dtype: torch.dtype,
                    scale: tuple[float, float, str]) -> None:
        """The fitted state from a text bank: tables on ``device`` and, for the CLIP methods, the
        model's ``(logit_scale, logit_bias, probability)`` (shared by fit and from_pretrained)."""
        self.knowledge_ = kn
        self.classes_ = np.array(kn.class_names, dtype=object)
        self.bank_ = bank
        self.model_scale_ = (float(scale[0]), float(scale[1]), str(scale[2]))
        self.tables_ = CoderTables.from_bank(bank, types=self._types(), device=device, dtype=dtype)
        if self.method in PROTOTYPE_METHODS:
            peers = BaselineTables.from_bank(bank, device=device, dtype=dtype)
            proto = {"dclip": peers.dclip, "cupl": peers.cupl, "cupl-templates": peers.cupl_templates,
                     "waffle": None if peers.waffle is None else peers.waffle.mean(0)}[self.method]
            self.tables_ = dataclasses.replace(self.tables_, prompt_emb=proto)
        clip = self._scored_as.startswith("clip")
        self.logit_scale_ = float(scale[0]) if clip else 1.0
        self.logit_bias_ = float(scale[1]) if clip else 0.0
        self.probability_ = scale[2] if clip else "softmax"

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, folder: str | os.PathLike) -> Path:
        """Write the fitted classifier to ``folder``: a config JSON, the text bank (safetensors)
        and the knowledge (JSON); no pickle. Reload with :meth:`from_pretrained`."""
        from .pretrained import save_classifier

        return save_classifier(self, folder)

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, encoder: Encoder | None = None
                        ) -> CoderClassifier:
        """A fitted classifier from a :meth:`save_pretrained` folder, without encoding any text.

        ``encoder``: the model that built the bank (its identity is checked; precision and device
        may differ), needed only to embed images; without one, classify precomputed embeddings
        (``embeddings=``).
        """
        from .pretrained import load_classifier

        return load_classifier(cls, folder, encoder)

    def _types(self) -> tuple[str, ...]:
        """The text types this classifier's bank holds."""
        types = tuple(self.types) if self.types is not None else METHODS[self.method]
        if self.method == "coder-rerank" and "contrast" not in types:
            types = (*types, "contrast")
        return types

    # ------------------------------------------------------------------ embeddings
    def encode(self, images: ImagesLike) -> torch.Tensor:
        """Unit image embeddings ``[N, D]`` on the CPU for paths, PIL images or preprocessed
        tensors (holds all N rows: for many images use the other methods, which stream)."""
        parts = list(self._batches(images, None, fitted=False))
        return torch.cat(parts) if parts else torch.empty(0, self.encoder.embed_dim)

    def _batches(self, images: ImagesLike | None, embeddings, fitted: bool = True):
        """Unit embeddings ``[n, D]``, batch by batch (images are read one batch at a time)."""
        if (images is None) == (embeddings is None):
            raise ConfigError("pass exactly one of images or embeddings")
        if fitted:
            check_is_fitted(self, "tables_")
        if embeddings is not None:
            if not isinstance(embeddings, (torch.Tensor, np.ndarray)):
                embeddings = np.asarray(embeddings, dtype=np.float32)
            dim = self.bank_.embed_dim
            if getattr(embeddings, "ndim", None) != 2 or embeddings.shape[1] != dim:
                shape = tuple(getattr(embeddings, "shape", ()))
                raise ConfigError(f"embeddings must have shape [N, {dim}], got {shape}")
            for xb in row_batches(embeddings, SCORE_BATCH):
                yield xb / xb.norm(dim=1, keepdim=True).clamp_min(1e-12)
            return
        if self.encoder is None:
            raise ConfigError("this classifier has no encoder to embed images (it was loaded "
                              "without one): pass embeddings=, or load it with "
                              "CoderClassifier.from_pretrained(folder, encoder=load_encoder(...))")
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]
        for start in range(0, len(images), self.batch_size):
            chunk = images[start:start + self.batch_size]
            if not isinstance(chunk, torch.Tensor):
                chunk = [load_image(im) if isinstance(im, (str, os.PathLike)) else im for im in chunk]
            yield self.encoder.encode_images(chunk, batch_size=self.batch_size).cpu()

    def _embeddings(self, images: ImagesLike | None, embeddings) -> torch.Tensor:
        """All unit embeddings ``[N, D]`` at once (for callers that need them together)."""
        parts = list(self._batches(images, embeddings))
        return torch.cat(parts) if parts else torch.empty(0, self.bank_.embed_dim)

    @property
    def _scored_as(self) -> str:
        """The pipeline method: a peer's prototypes sit where the name prompts are (fit)."""
        return "clip" if self.method in PROTOTYPE_METHODS else self.method

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        return stage1_scores(x, self.tables_, self._scored_as, self.logit_scale_, self.logit_bias_)

    def _rerank(self, x: torch.Tensor, scores: torch.Tensor):
        return rerank(x, scores, self.tables_, self._scored_as, self.rerank_k, self.tau)

    def scoring_settings(self) -> dict:
        """What the pipeline's batch functions need: method, rerank K and τ, the model's scale."""
        return {"method": self._scored_as, "rerank_k": self.rerank_k, "tau": self.tau,
                "logit_scale": self.logit_scale_, "logit_bias": self.logit_bias_,
                "probability": self.probability_}

    # ------------------------------------------------------------------ scoring
    def decision_function(self, images: ImagesLike | None = None, *, embeddings=None,
                          out: np.ndarray | None = None) -> np.ndarray:
        """Stage-1 logits ``[N, C]`` float32: the model's ``logit_scale · cos + logit_bias`` for
        the CLIP baselines, CODER's ×100 score otherwise; the rerank only reorders the top K.
        ``out``: an ``[N, C]`` array (e.g. memory-mapped) to fill instead of a new one."""
        return self._fill(images, embeddings, out, lambda x: self._scores(x).cpu().numpy())

    def predict_proba(self, images: ImagesLike | None = None, *, embeddings=None,
                      out: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities ``[N, C]`` float32 (see the class docstring: the model's own for
        the CLIP baselines, with the rerank candidates' values in the reranked order). ``out``:
        an ``[N, C]`` array (e.g. memory-mapped) to fill batch by batch instead of allocating
        one; for many images and classes prefer :meth:`top_k`."""
        return self._fill(images, embeddings, out,
                          lambda x: proba_batch(x, self.tables_, **self.scoring_settings()))

    def _fill(self, images, embeddings, out, fn) -> np.ndarray:
        parts, row = [], 0
        with torch.inference_mode():
            for xb in self._batches(images, embeddings):
                p = fn(xb)
                if out is None:
                    parts.append(p)
                else:
                    if row + len(p) > len(out) or out.shape[1:] != p.shape[1:]:
                        raise ConfigError(f"out has shape {tuple(out.shape)}, too small for "
                                          f"{row + len(p)} rows of {p.shape[1]} classes")
                    out[row:row + len(p)] = p
                row += len(p)
        if out is not None:
            return out
        return np.concatenate(parts) if parts else np.empty((0, len(self.classes_)), np.float32)

    def predict(self, images: ImagesLike | None = None, *, embeddings=None) -> np.ndarray:
        """Predicted class names ``[N]`` (use :meth:`predict_index` for label indices)."""
        check_is_fitted(self, "tables_")
        return self.classes_[self.predict_index(images, embeddings=embeddings)]

    def predict_index(self, images: ImagesLike | None = None, *, embeddings=None) -> np.ndarray:
        """Predicted class indices ``[N]`` (int64)."""
        with torch.inference_mode():
            parts = [predict_batch(xb, self.tables_, **self.scoring_settings())
                     for xb in self._batches(images, embeddings)]
        return np.concatenate(parts) if parts else np.empty(0, np.int64)

    def top_k(self, images: ImagesLike | None = None, *, embeddings=None, k: int = 5
              ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` class indices ``[N, k]`` (best first) and their probabilities ``[N, k]``
        (non-increasing along each row).

        With the rerank, the rerank winner is moved to the front of the stage-1 top K and the
        stage-1 probabilities keep their places: rank 1 shows the largest, whichever class the
        rerank put there (as :meth:`predict_proba`).
        """
        idx, prob = [], []
        with torch.inference_mode():
            for xb in self._batches(images, embeddings):
                i, p = top_k_batch(xb, self.tables_, k=k, **self.scoring_settings())
                idx.append(i)
                prob.append(p)
        if not idx:
            k = min(k, len(self.classes_))
            return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        return np.concatenate(idx), np.concatenate(prob)

    def explain(self, images: ImagesLike | None = None, *, embeddings=None, k: int = 5) -> list[dict]:
        """Why each image got its class, one dict per image.

        ``label``: the final class; ``stage1_label``: the class before the rerank;
        ``rerank_applied``: whether the image was below the confidence gap (so the rerank decided); ``explanation``: the ``k`` texts that
        contributed most to the winning class's stage-1 score (text, type, class, similarity,
        contribution in score units) and, when the rerank changed the answer, the ``k`` contrast
        texts that contributed most to its rerank score (with ``versus``: the rival class).
        """
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        check_is_fitted(self, "tables_")
        if not hasattr(self, "explain_index_"):
            self.explain_index_ = ExplainIndex.from_bank(self.bank_, self.method, types=self._types())
        names, texts = list(self.classes_), self.bank_.texts
        out: list[dict] = []
        with torch.inference_mode():
            for xb in self._batches(images, embeddings):   # one batch in memory at a time
                out.extend(self._explain_batch(xb, k, names, texts))
        return out

    def _explain_batch(self, xb: torch.Tensor, k: int, names: list[str], texts: list[str]) -> list[dict]:
        s = self._scores(xb)
        rr = self._rerank(xb, s)
        stage1 = s.argmax(dim=1).cpu()
        winner = rr.prediction.cpu() if rr is not None else stage1
        rows = shares_to_dicts(class_text_shares(xb, winner, self.explain_index_, k), texts, names)
        changed = winner != stage1
        if rr is not None and changed.any():
            sel = changed.nonzero().squeeze(1)
            extra = contrast_text_shares(xb.cpu()[sel], winner[sel], rr.candidates.cpu()[sel],
                                         self.explain_index_, k)
            for i, e in zip(sel.tolist(), shares_to_dicts(extra, texts, names)):
                rows[i] = rows[i] + e
        applied = rr.reranked.cpu().tolist() if rr is not None else [False] * len(rows)
        return [{"label": names[w], "stage1_label": names[s1], "rerank_applied": bool(r),
                 "explanation": e}
                for w, s1, r, e in zip(winner.tolist(), stage1.tolist(), applied, rows)]

    def score(self, images: ImagesLike | None = None, y=None, *, embeddings=None) -> float:
        """Top-1 accuracy (fraction) against ``y``: class names or indices, one per image."""
        check_is_fitted(self, "tables_")
        y = np.asarray(y)
        if y.dtype.kind in "USO":
            lookup = {str(n): i for i, n in enumerate(self.classes_)}
            unknown = sorted({str(v) for v in y} - lookup.keys())
            if unknown:
                raise ConfigError(f"y names {len(unknown)} class(es) this classifier does not know, "
                                  f"e.g. {unknown[0]!r}; its classes are those of the knowledge "
                                  f"({len(self.classes_)}, e.g. {self.classes_[0]!r})")
            y = np.array([lookup[str(v)] for v in y], dtype=np.int64)
        elif y.size and (y.min() < 0 or y.max() >= len(self.classes_)):
            raise ConfigError(f"y holds class index {int(y.max() if y.max() >= 0 else y.min())}, "
                              f"outside 0..{len(self.classes_) - 1}")
        pred = self.predict_index(images, embeddings=embeddings)
        if len(y) != len(pred):
            raise ConfigError(f"y has {len(y)} labels for {len(pred)} images")
        return float((pred == y).mean())
