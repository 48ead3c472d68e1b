"""Reproducible zero-shot benchmarks: standard datasets × models × methods, in one call.

For every (model, dataset) pair: build the text bank from the knowledge (by default the shipped
pack named like the dataset), stream the test images' embeddings through the feature cache (a
shard at a time; a killed run resumes from the shards it finished) while computing every method's
predictions, then read the labels and score. τ and K are either fixed before the run or
chosen on the dataset's validation split (never on the test split); the report says which.

Output (:func:`coderclip.reports.benchmark.write_benchmark`): ``report.json`` (format ``coderclip-benchmark-report``,
versioned), ``report.md`` and PNG charts under ``charts/``. docs/benchmark.md describes every field.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .._io import file_sha256, slug
from .._version import __version__
from ..bank.textbank import TextBank
from ..datasets import DATASETS, load as load_dataset
from ..defaults import DEFAULT_TAU, DEFAULT_TOP_K
from ..encoders import load_encoder
from ..errors import ConfigError, DatasetError
from ..feature_cache import encode_dataset, stream_features
from ..knowledge import Knowledge, load_knowledge
from ..knowledge.packs import has_pack, pack_path
from ..knowledge.templates import TEMPLATES_VERSION
from .guard import LabelGuard
from .predict import DEFAULT_KS, DEFAULT_TAUS, NothingScored, bank_types, check_methods
from .provenance import provenance, weights_record
from .run import per_image_sink, predict_then_label
from .selection import SELECTION_SOURCES, has_val_split, select_on_val  # noqa: F401

log = logging.getLogger(__name__)

BENCHMARK_FORMAT = "coderclip-benchmark-report"
BENCHMARK_VERSION = 1


@dataclasses.dataclass
class BenchmarkDataset:
    """One dataset of a benchmark: registry name, root folder, optional knowledge (a file or the
    name of a shipped pack; default: the pack named like the dataset, if any)."""

    name: str
    root: str
    knowledge: str | None = None


# ---------------------------------------------------------------------------------- inputs
def resolve_knowledge(source: str | None, dataset, pack_name: str | None = None):
    """(knowledge aligned to the dataset's classes, file it came from or None, description).

    Without ``source``, the shipped pack called ``pack_name`` (the dataset's registry name) is
    used when there is one, else names-only knowledge in the dataset's domain.
    """
    if source is None and pack_name and has_pack(pack_name):
        source = pack_name
    if source is None:
        kn = Knowledge.from_class_names(dataset.class_names, domain=dataset.domain, name=dataset.name)
        return kn, None, "class names only (no knowledge pack for this dataset)"
    kn = load_knowledge(source)
    path = str(pack_path(source)) if not os.path.exists(source) and has_pack(source) else source
    return kn.align(dataset.class_names), path, source


# ---------------------------------------------------------------------------------- running
def run_benchmark(datasets: Sequence[BenchmarkDataset], models: Sequence[str], *,
                  tau: float = DEFAULT_TAU, top_k: int = DEFAULT_TOP_K,
                  tau_from: str | None = "auto", k_from: str | None = "auto",
                  taus: Sequence[float] | None = None, ks: Sequence[int] | None = None,
                  seed: int = 0, device: str | None = None, precision: str | None = None,
                  batch_size: int = 64, num_workers: int | None = None, cache: bool = True,
                  show_progress_bar: bool = False, encoders: dict | None = None,
                  predictions_dir: str | os.PathLike | None = None,
                  predictions_format: str = "csv", methods: Sequence[str] | None = None) -> dict:
    """Evaluate every model on every dataset; returns the benchmark report (a JSON-able dict).

    ``tau_from`` / ``k_from``: ``"auto"`` (default) chooses them on each dataset's validation
    split where it has one and keeps ``tau`` / ``top_k`` elsewhere; ``"val"`` requires the split;
    ``None`` (or ``"fixed"``) keeps ``tau`` / ``top_k`` as given. ``encoders`` maps model specs to already loaded
    encoders (used instead of loading them). ``methods``: which methods to report (default
    :data:`~coderclip.evaluation.predict.DEFAULT_METHODS`). ``predictions_dir``: write each run's
    per-image predictions there, as ``<dataset>-<model>.csv`` (or ``.parquet``).
    """
    methods = check_methods(methods)
    for name, value in (("tau_from", tau_from), ("k_from", k_from)):
        if value not in SELECTION_SOURCES:
            raise ConfigError(f"{name} must be 'auto', 'val' or 'fixed', got {value!r}")
    tau_from, k_from = (None if v == "fixed" else v for v in (tau_from, k_from))
    if not datasets:
        raise ConfigError("give at least one dataset")
    if not models:
        raise ConfigError("give at least one model")
    taus = tuple(DEFAULT_TAUS if taus is None else taus)
    ks = tuple(DEFAULT_KS if ks is None else ks)
    if tau_from != "val" and float(tau) not in [float(t) for t in taus]:
        taus = tuple(sorted({*map(float, taus), float(tau)}))
    selecting = tau_from is not None or k_from is not None
    torch.manual_seed(seed)
    np.random.seed(seed)

    # Every dataset is opened (and every knowledge file read) before any model is loaded, so a
    # broken layout fails in seconds.
    prepared = []
    for spec in datasets:
        test = load_dataset(spec.name, spec.root, "test")
        val = None
        if selecting:
            required = "val" in (tau_from, k_from)
            val = load_dataset(spec.name, spec.root, "val") if required else has_val_split(
                lambda: load_dataset(spec.name, spec.root, "val"))
        if val is not None and val.class_names != test.class_names:
            raise DatasetError(f"{test.name}: the val split has other classes than the test split "
                               f"({len(val.class_names)} vs {len(test.class_names)}); τ and K "
                               "cannot be chosen on it")
        kn, kfile, ksource = resolve_knowledge(spec.knowledge, test, pack_name=spec.name)
        prepared.append((spec, test, val, kn, kfile, ksource))

    runs, model_records = [], []
    encoders = dict(encoders or {})
    for model_spec in models:
        encoder = encoders.get(model_spec) or load_encoder(model_spec, device=device, precision=precision)
        weights = weights_record(encoder)
        model_records.append({"spec": model_spec, **weights})
        for spec, test, val, kn, kfile, ksource in prepared:
            log.info("benchmark: %s on %s", model_spec, spec.name)
            guard = LabelGuard(test)
            bank = TextBank.build(kn, encoder, types=bank_types(methods), cache=cache,
                                  show_progress_bar=show_progress_bar)
            protocol = {"test_split": "test", "tau": float(tau), "tau_source": "fixed",
                        "top_k": int(top_k), "top_k_source": "fixed", "selection": None}
            if val is not None:
                vfeat = encode_dataset(encoder, val, batch_size=batch_size, num_workers=num_workers,
                                       cache=cache, show_progress_bar=show_progress_bar)
                if not vfeat.encoded.kept:
                    raise DatasetError(f"none of the {len(val)} validation images of {spec.name} "
                                       "could be read")
                kept_val = np.asarray(vfeat.encoded.kept, dtype=np.int64)
                sel = select_on_val(vfeat.encoded.embeddings, bank,
                                    lambda: val.labels()[kept_val],
                                    tau=tau, top_k=top_k, taus=taus, ks=ks,
                                    tune_tau=tau_from is not None, tune_k=k_from is not None)
                sel["split"] = "val"
                sel["split_description"] = _split_description(spec.name)
                protocol["selection"] = sel
                if tau_from is not None:
                    protocol["tau"], protocol["tau_source"] = sel["tau"], "val"
                if k_from is not None:
                    protocol["top_k"], protocol["top_k_source"] = sel["top_k"], "val"
            # the test split streams through the feature cache, one shard at most in memory
            feats = stream_features(encoder, test, batch_size=batch_size, num_workers=num_workers,
                                    cache=cache, show_progress_bar=show_progress_bar)
            run_taus = taus if protocol["tau"] in taus else tuple(sorted({*taus, protocol["tau"]}))
            pfile = None if predictions_dir is None else \
                Path(predictions_dir) / f"{slug(spec.name)}-{slug(model_spec)}.{predictions_format}"
            sink = per_image_sink(pfile, bank, encoder, kn.class_names, feats.kept_paths(),
                                  tau=protocol["tau"], top_k=protocol["top_k"], methods=methods)
            try:
                scores = predict_then_label(
                    (emb for _, emb in feats), bank, kn.class_names,
                    lambda: test.labels()[np.asarray(feats.kept, dtype=np.int64)],
                    tau=protocol["tau"], top_k=protocol["top_k"], taus=run_taus, ks=ks, guard=guard,
                    device=encoder.device, methods=methods, per_image=sink)
            except NothingScored:
                raise DatasetError(f"none of the {len(test)} images of {spec.name} could be read") from None
            run = {
                "dataset": {**test.describe(), "domain": test.domain},
                "model": model_spec,
                "knowledge": {"source": ksource, "file": kfile, "name": kn.name,
                              "domain": kn.domain, "counts": kn.counts()},
                "protocol": protocol,
                "features": {"cache_hit": feats.hit, "file": str(feats.folder) if feats.folder else None,
                             "key": feats.key},
                "skipped_images": [{"path": p, "reason": r} for p, r in feats.failures],
            }
            if pfile is not None:
                run["predictions_file"] = str(pfile)
            run.update(scores)
            run["provenance"] = provenance(encoder, kn, bank, kfile,
                                           extra={"seed": seed, "weights": weights},
                                           labels_read_after_predictions=guard.honest())
            runs.append(run)

    return {
        "format": BENCHMARK_FORMAT,
        "version": BENCHMARK_VERSION,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "settings": {"tau": float(tau), "top_k": int(top_k), "tau_from": tau_from, "k_from": k_from,
                     "taus": [float(t) for t in taus], "ks": [int(k) for k in ks], "seed": seed},
        "provenance": {
            "coderclip_version": __version__, "templates_version": TEMPLATES_VERSION,
            "torch_version": torch.__version__, "python": platform.python_version(),
            "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None, "seed": seed,
            "labels_read_after_predictions": bool(runs) and all(
                r["provenance"]["labels_read_after_predictions"] for r in runs),
        },
        "models": model_records,
        "datasets": [{"name": t.name, "loader": s.name, "root": s.root, "knowledge": ks_,
                      "knowledge_file": kf, "knowledge_sha256": file_sha256(kf) if kf else None,
                      "test_images": len(t), "val_images": len(v) if v is not None else None,
                      "classes": len(t.class_names), "domain": t.domain}
                     for s, t, v, _, kf, ks_ in prepared],
        "summary": summary_rows(runs),
        "runs": runs,
    }


def _split_description(name: str) -> str:
    info = DATASETS.get(name)
    return info.splits if info else "the dataset's val split"


def summary_rows(runs: Sequence[dict]) -> list[dict]:
    """One row per (dataset, model, method): top-1 and top-5."""
    return [{"dataset": r["dataset"]["name"], "model": r["model"], "method": m,
             "label": v["label"], "top1": v["top1"], "top5": v["top5"]}
            for r in runs for m, v in r["methods"].items()]
