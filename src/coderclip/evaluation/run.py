"""Honest zero-shot evaluation of a labelled dataset: every method's predictions first, labels after,
and a report that records what produced it."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from ..bank.textbank import TextBank
from ..encoders.base import Encoder
from ..errors import DatasetError
from ..knowledge import Knowledge
from ..scoring import DEFAULT_TAU, DEFAULT_TOP_K
from .guard import LabelGuard
from .metrics import score_zero_shot
from ..pipeline import row_batches
from .predict import (DEFAULT_KS, DEFAULT_TAUS, NothingScored, ZeroShotPredictor, bank_types,
                      check_methods)
from .provenance import provenance
from .selection import select_on_val

REPORT_FORMAT = "coderclip-zero-shot-report"
REPORT_VERSION = 1


def predict_then_label(x: torch.Tensor | Iterable[torch.Tensor], bank: TextBank,
                       class_names: Sequence[str], labels_of: Callable[[], np.ndarray], *,
                       tau: float = DEFAULT_TAU, top_k: int = DEFAULT_TOP_K,
                       taus: Sequence[float] = DEFAULT_TAUS, ks: Sequence[int] = DEFAULT_KS,
                       device: str | torch.device | None = None, guard: LabelGuard | None = None,
                       methods: Sequence[str] | None = None, per_image=None) -> dict:
    """The accuracy sections of a report for unit image embeddings: one tensor ``[N, D]`` or a
    stream of batches ``[n, D]`` (consumed once, never held together).

    Every method's predictions are computed first; ``labels_of()`` (the ``[N]`` labels of the
    embedded rows, in order) is called once, after them, and ``guard`` (if given) is told the
    predictions are final just before. Shared by :func:`evaluate`, the benchmark suite and the
    testbed demo, so all three follow the same order. ``per_image``: a
    :class:`~coderclip.evaluation.per_image.PerImagePredictions` that gets every batch, then the
    labels once they are read.
    """
    pred = ZeroShotPredictor(bank, tau=tau, top_k=top_k, taus=taus, ks=ks, device=device,
                             methods=methods)
    for xb in (row_batches(x) if isinstance(x, torch.Tensor) else x):
        pred.add(xb)
        if per_image is not None:
            per_image.add(xb)
    try:
        preds = pred.result()
    except NothingScored:
        if per_image is not None:
            per_image.discard()   # no image could be read: leave no empty predictions file behind
        raise
    if guard is not None:
        guard.final()
    labels = np.asarray(labels_of())
    if per_image is not None:
        per_image.close(labels)
    return score_zero_shot(preds, labels, class_names)


def evaluate(encoder: Encoder, knowledge: Knowledge, dataset, *, tau: float = DEFAULT_TAU,
             top_k: int = DEFAULT_TOP_K, taus: Sequence[float] = DEFAULT_TAUS,
             ks: Sequence[int] = DEFAULT_KS, batch_size: int = 64, num_workers: int | None = None,
             cache: bool = True, show_progress_bar: bool = False,
             knowledge_source: str | None = None, methods: Sequence[str] | None = None,
             templates=None, predictions: str | os.PathLike | None = None,
             predictions_k: int = 5, encoded_batches: Callable | None = None,
             decode: str = "cpu", val_dataset=None) -> dict:
    """Evaluate every method on a labelled dataset.

    ``knowledge``: a :class:`~coderclip.knowledge.Knowledge`, a knowledge file or a shipped pack
    name; ``dataset``: an :class:`~coderclip.datasets.ImageDataset`, or a folder with one
    sub-folder per class or a ``path,label`` CSV (its classes are the ones scored).
    ``templates``: replace the domain's templates (see
    :func:`~coderclip.knowledge.templates.load_templates`); ``predictions``: write every image's
    top ``predictions_k`` classes and scores per method to this ``.csv`` or ``.parquet`` file
    (:mod:`~coderclip.evaluation.per_image`).

    With ``val_dataset`` (labelled validation images of the same classes), τ and K are chosen on
    it (CODER + rerank top-1 over ``taus`` × ``ks``) instead of taking ``tau`` / ``top_k``; the
    report's ``protocol`` says where they came from.

    Order of work: align the knowledge to the dataset's classes (by name), build the text bank,
    embed and score the images batch by batch, and only then read the labels. The image
    embeddings stream through the image-feature cache (:mod:`coderclip.feature_cache`), a shard
    at a time, never the whole set: a re-run reads them instead of encoding again, and a run
    killed while encoding resumes from the shards it finished. ``cache=False`` reads and writes
    neither the text-embedding cache nor the feature cache. ``methods``: which methods to report
    (default :data:`~coderclip.defaults.DEFAULT_METHODS`; CODER + rerank, its sweeps and the
    ablation are always there); only their texts are encoded. ``encoded_batches`` replaces
    :func:`~coderclip.images.iter_encoded_batches` (same arguments, same batches), e.g. with the
    Ray engine's :func:`~coderclip.scale.ray_engine.ray_encoded_batches`; its embeddings bypass
    the feature cache (they may come from another device or precision than ``encoder``'s).
    ``decode``: ``"cpu"`` or ``"device"`` (JPEG decoding on the model's device; see
    :func:`~coderclip.images.iter_encoded_batches`), for the default image batches; features
    decoded on the device are cached apart from those decoded on the CPU.
    """
    from ..feature_cache import stream_features

    knowledge, dataset, knowledge_source = _resolve_inputs(knowledge, dataset, knowledge_source)
    guard = LabelGuard(dataset)
    kn = knowledge.align(dataset.class_names)
    bank = TextBank.build(kn, encoder, types=bank_types(methods), cache=cache,
                          show_progress_bar=show_progress_bar, templates=templates)
    feats = stream_features(encoder, dataset, batch_size=batch_size, num_workers=num_workers,
                            cache=cache, show_progress_bar=show_progress_bar, decode=decode,
                            encoded_batches=encoded_batches)

    def labels() -> np.ndarray:
        return dataset.labels()[np.asarray(feats.kept, dtype=np.int64)]

    protocol = {"tau": float(tau), "tau_source": "fixed", "top_k": int(top_k), "top_k_source": "fixed",
                "selection": None}
    if val_dataset is not None:
        protocol = choose_on_val(encoder, bank, kn, val_dataset, tau=tau, top_k=top_k, taus=taus, ks=ks,
                                 batch_size=batch_size, num_workers=num_workers,
                                 show_progress_bar=show_progress_bar, cache=cache, decode=decode)
        tau, top_k = protocol["tau"], protocol["top_k"]
        taus = taus if tau in taus else tuple(sorted({*taus, tau}))

    sink = per_image_sink(predictions, bank, encoder, kn.class_names, feats.kept_paths(),
                          k=predictions_k, tau=tau, top_k=top_k, methods=methods)
    try:
        scores = predict_then_label((emb for _, emb in feats), bank, kn.class_names, labels, tau=tau,
                                    top_k=top_k, taus=taus, ks=ks, device=encoder.device, guard=guard,
                                    methods=methods, per_image=sink)
    except NothingScored:
        raise DatasetError(f"none of the {len(dataset)} images of {dataset.name} could be read") from None
    report = {"format": REPORT_FORMAT, "version": REPORT_VERSION,
              "dataset": dataset.describe(), "protocol": protocol,
              "skipped_images": [{"path": p, "reason": r} for p, r in feats.failures]}
    report.update(scores)
    if predictions is not None:
        report["predictions_file"] = str(predictions)
    report["provenance"] = provenance(encoder, kn, bank, knowledge_source,
                                      labels_read_after_predictions=guard.honest())
    return report


def choose_on_val(encoder: Encoder, bank: TextBank, knowledge: Knowledge, val_dataset, *, tau: float,
                  top_k: int, taus: Sequence[float] = DEFAULT_TAUS, ks: Sequence[int] = DEFAULT_KS,
                  batch_size: int = 64, num_workers: int | None = None,
                  show_progress_bar: bool = False, cache: bool = True, decode: str = "cpu") -> dict:
    """The evaluation protocol with τ and K chosen on labelled validation images (their
    embeddings go through the feature cache like the test images', unless ``cache`` is false)."""
    from ..feature_cache import encode_dataset

    if list(val_dataset.class_names) != list(knowledge.class_names):
        missing = sorted(set(val_dataset.class_names) ^ set(knowledge.class_names))[:5]
        raise DatasetError(f"the validation images {val_dataset.name!r} have other classes than the "
                           f"evaluated images (e.g. {missing}); give a validation set with the same "
                           "class folders or labels")
    enc = encode_dataset(encoder, val_dataset, batch_size=batch_size, num_workers=num_workers,
                         cache=cache, show_progress_bar=show_progress_bar, decode=decode).encoded
    if not enc.kept:
        raise DatasetError(f"none of the {len(val_dataset)} validation images of {val_dataset.name} "
                           "could be read")
    kept = np.asarray(enc.kept, dtype=np.int64)
    sel = select_on_val(enc.embeddings, bank, lambda: val_dataset.labels()[kept], tau=tau, top_k=top_k,
                        taus=taus, ks=ks, tune_tau=True, tune_k=True)
    sel["split"] = "val"
    sel["source"] = val_dataset.describe()
    return {"tau": sel["tau"], "tau_source": "val", "top_k": sel["top_k"], "top_k_source": "val",
            "selection": sel}


def per_image_sink(path, bank: TextBank, encoder: Encoder, class_names: Sequence[str], paths,
                   k: int = 5, tau: float = DEFAULT_TAU, top_k: int = DEFAULT_TOP_K,
                   methods: Sequence[str] | None = None):
    """A :class:`~coderclip.evaluation.per_image.PerImagePredictions` for ``path`` (the methods
    of the run, CODER + rerank always among them), or ``None``."""
    if path is None:
        return None
    from .per_image import MethodRanker, PerImagePredictions

    ranker = MethodRanker(bank, k=k, tau=tau, rerank_k=top_k, logit_scale=encoder.logit_scale,
                          logit_bias=encoder.logit_bias, probability=encoder.probability,
                          methods=(*check_methods(methods), "coder-rerank"), device=encoder.device)
    return PerImagePredictions(path, ranker, class_names, (str(p) for p in paths))


def _resolve_inputs(knowledge, dataset, source: str | None):
    """Knowledge and dataset objects from what a user may pass: objects, paths or a pack name."""
    if isinstance(knowledge, (str, os.PathLike)):
        from ..knowledge import load_knowledge

        source = source or str(knowledge)
        knowledge = load_knowledge(knowledge)
    if isinstance(dataset, (str, os.PathLike)):
        from ..datasets import open_dataset

        dataset = open_dataset(str(dataset))   # the classes are its folders or its labels
    return knowledge, dataset, source
