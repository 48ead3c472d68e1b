"""Exception types: one per failure family, each carrying the offending value in its message."""

from __future__ import annotations


class CoderClipError(Exception):
    """Base class for every error coderclip raises on purpose (the CLI prints these in one line)."""


class KnowledgeError(CoderClipError, ValueError):
    """A knowledge file is malformed, inconsistent or does not match the classes it is used with."""


class ModelLoadError(CoderClipError, RuntimeError):
    """A model could not be found or loaded (missing weights, unreachable hub, wrong format)."""


class ImageReadError(CoderClipError, OSError):
    """An image file could not be read or decoded."""


class CacheError(CoderClipError, RuntimeError):
    """The embedding cache is unusable (unwritable folder, mismatched model)."""


class DatasetError(CoderClipError, ValueError):
    """A dataset on disk is missing, incomplete or inconsistent."""


class ConfigError(CoderClipError, ValueError):
    """An option or argument has an invalid value."""


class LLMError(CoderClipError, RuntimeError):
    """A language model backend failed or answered unusably (after any retries)."""


class NotFittedError(CoderClipError, ValueError, AttributeError):
    """A classifier or adapter was used before ``fit`` (scikit-learn's name and base classes)."""
