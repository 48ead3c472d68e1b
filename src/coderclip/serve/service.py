"""What the HTTP layer calls: the model and text banks loaded once, image decoding with the CLI's
guarded reader, and one function that classifies a micro-batch of requests."""

from __future__ import annotations

import dataclasses
import io
import platform
from collections.abc import Sequence

import torch

from ..classifier import METHODS, CoderClassifier
from ..defaults import SERVED_METHODS
from ..errors import ConfigError
from ..images import load_image
from .batcher import Job


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may carry."""

    max_body_bytes: int = 20 * 1024 * 1024
    max_images: int = 16
    max_pixels: int = 40_000_000
    max_top_k: int = 100


class ClassifierService:
    """One encoder, one fitted classifier per served method (sharing the encoder)."""

    def __init__(self, encoder, knowledge, methods: Sequence[str] = SERVED_METHODS,
                 default_method: str = "coder-rerank", rerank_k: int | None = None,
                 tau: float | None = None, cache: bool = True, limits: Limits = Limits()):
        methods = list(dict.fromkeys(methods))
        unknown = [m for m in methods if m not in METHODS]
        if unknown or not methods:
            raise ConfigError(f"unknown method(s) {unknown}; expected some of {', '.join(METHODS)}")
        if default_method not in methods:
            raise ConfigError(f"the default method {default_method!r} is not among the served "
                              f"methods {methods}")
        extra = {k: v for k, v in (("rerank_k", rerank_k), ("tau", tau)) if v is not None}
        self.encoder, self.knowledge, self.limits = encoder, knowledge, limits
        self.default_method = default_method
        self.classifiers = {m: CoderClassifier(encoder, knowledge, method=m, cache=cache, **extra).fit()
                            for m in methods}
        first = self.classifiers[default_method]
        self.classes: list[str] = [str(c) for c in first.classes_]
        self.knowledge_digest = first.bank_.knowledge_digest

    # ------------------------------------------------------------------ requests
    def check_options(self, method: str | None, top_k: int | None, explain: bool) -> tuple[str, int]:
        """The method and top_k to use (defaults filled in); raises :class:`ConfigError` naming a
        bad option."""
        method = method or self.default_method
        if method not in self.classifiers:
            raise ConfigError(f"unknown method {method!r}; this server offers "
                              f"{', '.join(self.classifiers)}")
        most = min(self.limits.max_top_k, len(self.classes))
        if top_k is None:
            top_k = min(5, most)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= most:
            raise ConfigError(f"top_k must be an integer from 1 to {most}, got {top_k!r}")
        if not isinstance(explain, bool):
            raise ConfigError(f"explain must be true or false, got {explain!r}")
        return method, top_k

    def decode(self, data: bytes, name: str) -> torch.Tensor:
        """Image bytes -> the encoder's preprocessed tensor ``[3, H, W]``; :class:`ImageReadError`
        names the image on anything unreadable, empty or over the pixel limit."""
        from ..errors import ImageReadError

        if not data:
            raise ImageReadError(f"{name}: empty upload; send the image file's bytes")
        image = load_image(io.BytesIO(data), name=name, max_pixels=self.limits.max_pixels)
        return self.encoder.preprocess(image)

    def run_batch(self, jobs: list[Job]) -> list[list[dict]]:
        """Encode every job's images in one pass and classify each job with its own options."""
        pixels = torch.cat([j.payload for j in jobs])
        x = self.encoder.encode_images(pixels, batch_size=max(1, pixels.shape[0]))
        out, start = [], 0
        for job in jobs:
            xs = x[start:start + job.size]
            start += job.size
            out.append(self.classify_embeddings(xs, **job.options))
        return out

    def classify_embeddings(self, x: torch.Tensor, method: str, top_k: int, explain: bool
                            ) -> list[dict]:
        """Per image: ``label``/``score`` (best first, as the transformers pipeline names them)
        plus CODER's extras: rerank applied, stage-1 label, and the deciding texts when asked."""
        clf = self.classifiers[method]
        idx, prob = clf.top_k(embeddings=x, k=top_k)
        why = clf.explain(embeddings=x, k=top_k if explain else 1)
        rows = []
        for ci, pi, w in zip(idx.tolist(), prob.tolist(), why):
            preds = [{"label": self.classes[c], "score": float(p)} for c, p in zip(ci, pi)]
            row = {"label": preds[0]["label"], "score": preds[0]["score"], "predictions": preds,
                   "reranked": w["label"] != w["stage1_label"], "rerank_applied": w["rerank_applied"],
                   "stage1_label": w["stage1_label"]}
            if explain:
                row["explanation"] = w["explanation"]
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ description
    def model_info(self) -> dict:
        import open_clip
        import transformers

        from .._version import __version__
        from ..knowledge.templates import TEMPLATES_VERSION

        kn, enc = self.knowledge, self.encoder
        clf = self.classifiers[self.default_method]
        return {
            "model": {"name": enc.name, "identity": enc.identity, "embed_dim": enc.embed_dim,
                      "device": str(enc.device), "dtype": str(enc.dtype).removeprefix("torch.")},
            "knowledge": {"name": getattr(kn, "name", None), "domain": kn.domain,
                          "classes": len(self.classes), "sha256": self.knowledge_digest},
            "methods": list(self.classifiers), "default_method": self.default_method,
            "rerank": {"k": clf.rerank_k, "tau": clf.tau},
            "limits": dataclasses.asdict(self.limits),
            "versions": {"coderclip": __version__, "templates": TEMPLATES_VERSION,
                         "torch": torch.__version__, "open_clip": open_clip.__version__,
                         "transformers": transformers.__version__,
                         "python": platform.python_version()},
        }
