"""Exception types: one per failure family, each carrying the offending value in its message.

Every family has an ``exit_code``: the status the ``coderclip`` command exits with when an error of
that family ends it (listed for users in docs/errors.md):

====  =============  ==========================================================================
code  family         meaning
====  =============  ==========================================================================
1     (other)        finished, but some items failed; or an unexpected internal error
2     usage          an option or argument is invalid (fix the command line)
3     input          a file or folder given (or to be written) is missing, unreadable or malformed
4     model          a model could not be loaded, or produced unusable numbers
5     network        a language-model server could not be reached or kept failing
130   interrupted    Ctrl-C (SIGINT); the message says what was kept
====  =============  ==========================================================================
"""

from __future__ import annotations

#: Exit statuses by family (the ``coderclip`` command's contract with scripts).
EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_MODEL = 4
EXIT_NETWORK = 5
EXIT_INTERRUPTED = 130


class CoderClipError(Exception):
    """Base class for every error coderclip raises on purpose (the CLI prints these in one line)."""

    exit_code: int = EXIT_PARTIAL


class ConfigError(CoderClipError, ValueError):
    """An option or argument has an invalid value (usage family)."""

    exit_code = EXIT_USAGE


#: The usage family by its family name.
UsageError = ConfigError


class InputError(CoderClipError, ValueError):
    """A file or folder the user named is missing, unreadable or malformed (input family)."""

    exit_code = EXIT_INPUT


class OutputError(CoderClipError, OSError):
    """An output file or folder cannot be written (input family: the path given is unusable)."""

    exit_code = EXIT_INPUT


class KnowledgeError(CoderClipError, ValueError):
    """A knowledge file is malformed, inconsistent or does not match the classes it is used with."""

    exit_code = EXIT_INPUT


class ImageReadError(CoderClipError, OSError):
    """An image file could not be read or decoded."""

    exit_code = EXIT_INPUT


class CacheError(CoderClipError, RuntimeError):
    """The embedding cache is unusable (unwritable folder, mismatched model)."""

    exit_code = EXIT_INPUT


class DatasetError(CoderClipError, ValueError):
    """A dataset on disk is missing, incomplete or inconsistent."""

    exit_code = EXIT_INPUT


class ModelLoadError(CoderClipError, RuntimeError):
    """A model could not be found or loaded (missing weights, unreachable hub, wrong format)."""

    exit_code = EXIT_MODEL


class ModelOutputError(CoderClipError, RuntimeError):
    """A model produced unusable numbers (NaN or infinite embeddings)."""

    exit_code = EXIT_MODEL


class ShardError(DatasetError):
    """One input shard (a tar, Parquet or embedding file) is unreadable or inconsistent; a job
    reports it by name and goes on with the other shards."""


class LLMError(CoderClipError, RuntimeError):
    """A language model backend failed or answered unusably (after any retries)."""

    exit_code = EXIT_NETWORK


class Interrupted(CoderClipError):
    """The run was interrupted (Ctrl-C); the message says what was kept and how to resume."""

    exit_code = EXIT_INTERRUPTED


class NotFittedError(CoderClipError, ValueError, AttributeError):
    """A classifier or adapter was used before ``fit`` (scikit-learn's name and base classes)."""
