"""The text bank (every text of the knowledge, embedded once) and its on-disk embedding cache."""

from .cache import TextEmbeddingCache, cached_encode
from .textbank import CODER_TYPES, TEXT_TYPES, TextBank

__all__ = ["CODER_TYPES", "TEXT_TYPES", "TextBank", "TextEmbeddingCache", "cached_encode"]
