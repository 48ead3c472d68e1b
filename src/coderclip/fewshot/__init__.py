"""Few-shot classification with a training-free cache: CODER-Adapter and Tip-Adapter
(docs/method.md §6, docs/fewshot.md).

Typical use on precomputed embeddings::

    from coderclip.fewshot import CoderAdapter
    adapter = CoderAdapter.from_tables(tables).fit(support, support_labels, val, val_labels)
    adapter.predict(test)            # α, β were chosen on the validation data only

and the whole protocol (shots × seeds × methods, report) with :func:`run_fewshot`.

Public names are imported lazily so that the CLI can read :mod:`.defaults` without torch.
"""

from __future__ import annotations

import importlib

from .defaults import (DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_REFINE, DEFAULT_SEEDS, DEFAULT_SHOTS,
                       DEFAULT_VIEWS, VAL_PER_CLASS)

_LAZY = {
    "ADAPTERS": "adapters", "CacheAdapter": "adapters", "CoderAdapter": "adapters",
    "TipAdapter": "adapters", "zero_shot_classifier": "adapters",
    "CacheModel": "cache_model", "CoderSpace": "cache_model", "minmax_rows": "cache_model",
    "folder_splits": "protocol", "loader_splits": "protocol", "predict_fewshot": "protocol",
    "run_fewshot": "protocol", "score_fewshot": "protocol",
    "format_markdown": "report", "format_summary": "report", "plot_accuracy": "report",
    "write_report": "report",
    "FewShotSplit": "sampling", "plan_splits": "sampling",
    "SearchResult": "search", "SearchSpace": "search", "search_alpha_beta": "search",
    "Augmentation": "support", "support_features": "support",
}

__all__ = ["DEFAULT_ALPHA", "DEFAULT_BETA", "DEFAULT_REFINE", "DEFAULT_SEEDS", "DEFAULT_SHOTS",
           "DEFAULT_VIEWS", "VAL_PER_CLASS", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'coderclip.fewshot' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
