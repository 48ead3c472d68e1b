"""Classify collections too large for one process: readers for the formats large image sets come
in (image folders, CSV manifests, WebDataset tars, Parquet, clip-retrieval embeddings), writers
that keep memory flat and resume after a kill, and two engines over the same per-block stages:
a single process, or a Ray Data pipeline on a local instance or a cluster.

    from coderclip.scale import classify
    summary = classify(["shards/"], "open_clip:ViT-B-32:openai", "food101", "predictions/",
                       engine="ray")
"""

from __future__ import annotations

from .job import ENGINES, classify, format_summary
from .sources import FORMATS, Batch, Shard, detect_format, list_shards, path_shards, read_shard


def classify_ray(inputs, model, knowledge, output, **kwargs) -> dict:
    """:func:`classify` with ``engine="ray"`` (``address=`` for an existing cluster)."""
    return classify(inputs, model, knowledge, output, engine="ray", **kwargs)


__all__ = ["ENGINES", "FORMATS", "Batch", "Shard", "classify", "classify_ray", "detect_format",
           "format_summary", "list_shards", "path_shards", "read_shard"]
