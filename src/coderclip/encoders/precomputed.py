"""Precomputed image embeddings as an encoder: images are row indices or ids into a features file;
texts are delegated to a real text encoder (the same model that produced the features)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..errors import ConfigError
from ..features import FeatureSet, load_features
from .base import Encoder


class PrecomputedEncoder(Encoder):
    """``encode_images`` takes row indices (ints) or ids (strings) of ``features``."""

    def __init__(self, features: FeatureSet | str, text_encoder: Encoder):
        self.features = load_features(features) if isinstance(features, str) else features
        self.text_encoder = text_encoder
        dim = int(self.features.embeddings.shape[1])
        if dim != text_encoder.embed_dim:
            raise ConfigError(
                f"the precomputed image embeddings are {dim}-d but the text model "
                f"{text_encoder.name} makes {text_encoder.embed_dim}-d embeddings; use the model that "
                "produced the features")
        if self.features.model and self.features.model != text_encoder.identity:
            import logging

            logging.getLogger(__name__).warning(
                "features were made by %s, texts will be encoded by %s", self.features.model,
                text_encoder.identity)
        self.embed_dim, self.device, self.dtype = dim, text_encoder.device, torch.float32
        self.identity, self.name = text_encoder.identity, f"precomputed+{text_encoder.name}"
        self.logit_scale, self.logit_bias = text_encoder.logit_scale, text_encoder.logit_bias
        self.probability = text_encoder.probability
        self._row = {s: i for i, s in enumerate(self.features.ids or [])}
        self.preprocess = self._no_pixels

    @staticmethod
    def _no_pixels(image):
        raise ConfigError("a precomputed-features encoder cannot embed new images")

    def rows(self, items: Sequence[int | str]) -> torch.Tensor:
        try:
            return torch.tensor([i if isinstance(i, int) else self._row[i] for i in items], dtype=torch.long)
        except KeyError as e:
            raise ConfigError(f"id {e.args[0]!r} is not in the features file") from None

    def encode_images(self, images, batch_size: int = 0, show_progress_bar: bool = False) -> torch.Tensor:
        rows = images if isinstance(images, torch.Tensor) else self.rows(images)
        return self.features.embeddings[rows].to(self.device)

    def _encode_image_batch(self, pixels: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise ConfigError("a precomputed-features encoder cannot embed pixels")

    def _encode_text_batch(self, texts: list[str]) -> torch.Tensor:
        return self.text_encoder._encode_text_batch(texts)
