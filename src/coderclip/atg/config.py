"""Settings of one generation run."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from ..errors import ConfigError
from ..knowledge import KNOWLEDGE_TYPES
from .retry import RetryPolicy

SYNONYM_SOURCES = ("wordnet", "llm", "both")


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """What to generate and how hard to try.

    Counts are upper bounds: answers are cleaned, de-duplicated and capped to them.
    ``pairs``: contrast pairs as a file path or ``(name, name)`` tuples; ``None`` chooses each
    class's ``neighbours`` nearest classes by name-prompt similarity (needs an encoder).
    """

    types: tuple[str, ...] = KNOWLEDGE_TYPES
    synonyms_from: str = "wordnet"
    n_attributes: int = 8
    n_analogous: int = 5
    n_synonyms: int = 5
    n_contrast_features: int = 3
    neighbours: int = 3
    pairs: str | os.PathLike | Sequence[tuple[str, str]] | None = None
    analogous_threshold: float = 0.9
    #: Extra questions for replacements when look-alikes are rejected (0 = ask once).
    max_reasks: int = 2
    temperature: float = 0.0
    max_tokens: int = 400
    concurrency: int = 4
    retry: RetryPolicy = RetryPolicy()
    #: How often an unusable (empty, malformed) answer is asked again before the task fails.
    max_bad_answers: int = 2
    #: Consecutive requests that cannot connect at all (across all tasks) before the run stops:
    #: the server is down, and asking the rest would only wait out every retry.
    max_connection_failures: int = 8

    def __post_init__(self) -> None:
        types = tuple(self.types)
        bad = [t for t in types if t not in KNOWLEDGE_TYPES]
        if bad or not types:
            raise ConfigError(f"unknown knowledge type(s) {bad or types!r}; choose from "
                              f"{', '.join(KNOWLEDGE_TYPES)}")
        object.__setattr__(self, "types", tuple(t for t in KNOWLEDGE_TYPES if t in types))
        if self.synonyms_from not in SYNONYM_SOURCES:
            raise ConfigError(f"synonyms source must be one of {', '.join(SYNONYM_SOURCES)}, "
                              f"got {self.synonyms_from!r}")
        for field in ("n_attributes", "n_analogous", "n_synonyms", "n_contrast_features",
                      "neighbours", "concurrency", "max_tokens", "max_connection_failures"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"{field} must be a positive integer, got {value!r}")
        if not isinstance(self.max_reasks, int) or self.max_reasks < 0:
            raise ConfigError(f"max_reasks must be 0 or more, got {self.max_reasks!r}")
        if not -1.0 <= self.analogous_threshold <= 1.0:
            raise ConfigError(f"analogous_threshold is a cosine in [-1, 1], got {self.analogous_threshold!r}")
        if not 0.0 <= self.temperature <= 2.0:
            raise ConfigError(f"temperature must be in [0, 2], got {self.temperature!r}")

    @property
    def llm_types(self) -> tuple[str, ...]:
        """The selected types that are asked of the language model."""
        return tuple(t for t in self.types if t != "synonyms" or self.synonyms_from != "wordnet")

    @property
    def wordnet_synonyms(self) -> bool:
        return "synonyms" in self.types and self.synonyms_from in ("wordnet", "both")
