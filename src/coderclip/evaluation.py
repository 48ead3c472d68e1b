"""Honest zero-shot evaluation: every method's predictions are computed first, labels are read
after, and the report records what produced it.

Methods compared on the same image embeddings: CLIP with the name prompt, CLIP with the template
ensemble, CODER (heuristic classifier), CODER + one-vs-one rerank; plus the ablation ladder
P → +Att → +Ana → +Syn → +rerank and the rerank's accuracy as a function of τ and K.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import sys
from collections.abc import Sequence
from datetime import datetime, timezone

import numpy as np
import torch

from ._version import __version__
from .encoders.base import Encoder
from .errors import DatasetError
from .knowledge import Knowledge
from .scoring import (DEFAULT_TAU, DEFAULT_TOP_K, CoderTables, clip_scores, heuristic_scores,
                      move_to_front, rerank_top_k)
from .templates import TEMPLATES_VERSION
from .textbank import TEXT_TYPES, TextBank

REPORT_FORMAT = "coderclip-zero-shot-report"
REPORT_VERSION = 1

METHOD_LABELS = {"clip": "CLIP (name prompt)", "clip-ensemble": "CLIP (template ensemble)",
                 "coder": "CODER", "coder-rerank": "CODER + rerank"}
#: Ablation ladder: label -> text types of the heuristic classifier.
ABLATION = {
    "P": ("name",),
    "P+Att": ("name", "attribute"),
    "P+Att+Ana": ("name", "attribute", "analogous"),
    "P+Att+Ana+Syn": ("name", "attribute", "analogous", "synonym"),
}
DEFAULT_TAUS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
DEFAULT_KS = (2, 3, 5, 10)


@dataclasses.dataclass
class ZeroShotPredictions:
    """Label-free outputs for N images.

    ``ranking[m]`` ``[N, 5]``: each method's top classes, best first (for the rerank, the winner
    moved to the front). ``stage1`` / ``reranked`` ``[N]``: CODER's stage-1 prediction and whether
    the sample fell under the confidence gap. ``tau_sweep[τ]`` / ``k_sweep[K]``: final predictions.
    """

    ranking: dict[str, np.ndarray]
    stage1: np.ndarray
    reranked: np.ndarray
    tau_sweep: dict[float, np.ndarray]
    k_sweep: dict[int, np.ndarray]
    tau: float
    top_k: int

    def prediction(self, method: str) -> np.ndarray:
        return self.ranking[method][:, 0]


def _ranking(scores: torch.Tensor, k: int = 5) -> torch.Tensor:
    return scores.topk(min(k, scores.shape[1]), dim=1).indices


def predict_zero_shot(x: torch.Tensor, bank: TextBank, tau: float = DEFAULT_TAU,
                      top_k: int = DEFAULT_TOP_K, taus: Sequence[float] = DEFAULT_TAUS,
                      ks: Sequence[int] = DEFAULT_KS, ablation: bool = True,
                      batch_size: int = 8192) -> ZeroShotPredictions:
    """All methods' predictions for unit image embeddings ``x`` ``[N, D]`` (no labels involved).

    Works through the images in batches of ``batch_size`` so memory stays bounded.
    """
    device = x.device
    dtype = x.dtype if device.type != "cpu" else torch.float32
    full = CoderTables.from_bank(bank, device=device, dtype=dtype)
    no_ovo = tuple(t for t in bank.types if t != "contrast")
    ladder = {name: CoderTables.from_bank(bank, types=types, device=device, dtype=dtype)
              for name, types in ABLATION.items()} if ablation else {}
    has_ensemble = full.ensemble_emb is not None
    coder = CoderTables.from_bank(bank, types=no_ovo, device=device, dtype=dtype)
    parts: dict[str, list[torch.Tensor]] = {}

    def put(key: str, value: torch.Tensor) -> None:
        parts.setdefault(key, []).append(value.cpu())

    for start in range(0, x.shape[0], batch_size):
        xb = x[start:start + batch_size]
        put("clip", _ranking(clip_scores(xb, full)))
        if has_ensemble:
            put("clip-ensemble", _ranking(clip_scores(xb, full, ensemble=True)))
        s = heuristic_scores(xb, coder)
        put("coder", _ranking(s))
        for name, tables in ladder.items():
            put(f"ablation:{name}", _ranking(heuristic_scores(xb, tables)))
        rr = rerank_top_k(xb, s, full, top_k=top_k, tau=tau)
        rest = _ranking(s)
        put("coder-rerank", move_to_front(rr.prediction, rest))
        put("stage1", rr.candidates[:, 0])
        put("reranked", rr.reranked)
        always = rerank_top_k(xb, s, full, top_k=top_k, tau=float("inf"))
        for t in taus:
            put(f"tau:{t}", torch.where(always.gap < t, always.prediction, always.candidates[:, 0]))
        for k in ks:
            put(f"k:{k}", rerank_top_k(xb, s, full, top_k=k, tau=tau).prediction)
    cat = {k: torch.cat(v).numpy() for k, v in parts.items()}
    ranking = {k: v for k, v in cat.items() if k in METHOD_LABELS or k.startswith("ablation:")}
    return ZeroShotPredictions(
        ranking=ranking, stage1=cat["stage1"], reranked=cat["reranked"].astype(bool),
        tau_sweep={t: cat[f"tau:{t}"] for t in taus}, k_sweep={k: cat[f"k:{k}"] for k in ks},
        tau=tau, top_k=top_k)


def _accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float((pred == labels).mean() * 100.0) if len(labels) else float("nan")


def score_zero_shot(preds: ZeroShotPredictions, labels: np.ndarray, class_names: Sequence[str]
                    ) -> dict:
    """Accuracies (top-1, top-5, per class), the ablation ladder, the rerank report and the τ/K
    sweeps, from final predictions and the labels."""
    labels = np.asarray(labels)
    methods = {}
    for m, label in METHOD_LABELS.items():
        if m not in preds.ranking:
            continue
        r = preds.ranking[m]
        methods[m] = {"label": label, "top1": _accuracy(r[:, 0], labels),
                      "top5": float((r[:, :5] == labels[:, None]).any(axis=1).mean() * 100.0)}
    ladder = {name: _accuracy(preds.ranking[f"ablation:{name}"][:, 0], labels)
              for name in ABLATION if f"ablation:{name}" in preds.ranking}
    if ladder:
        ladder["+rerank"] = methods["coder-rerank"]["top1"]
    final = preds.prediction("coder-rerank")
    changed = preds.reranked & (final != preds.stage1)
    rerank = {
        "tau": preds.tau, "top_k": preds.top_k,
        "reranked": int(preds.reranked.sum()), "changed": int(changed.sum()),
        "wrong_to_right": int((changed & (preds.stage1 != labels) & (final == labels)).sum()),
        "right_to_wrong": int((changed & (preds.stage1 == labels) & (final != labels)).sum()),
        "wrong_to_wrong": int((changed & (preds.stage1 != labels) & (final != labels)).sum()),
        "tau_sweep": [{"tau": t, "top1": _accuracy(p, labels)} for t, p in preds.tau_sweep.items()],
        "k_sweep": [{"top_k": k, "top1": _accuracy(p, labels)} for k, p in preds.k_sweep.items()],
    }
    per_class = []
    for c, name in enumerate(class_names):
        m = labels == c
        per_class.append({"class": name, "images": int(m.sum()),
                          **{meth: _accuracy(preds.ranking[meth][m, 0], labels[m])
                             for meth in methods}})
    return {"n_images": int(len(labels)), "methods": methods, "ablation": ladder,
            "rerank": rerank, "per_class": per_class,
            "confused_pairs": confused_pairs(preds.prediction("coder-rerank"), labels, class_names)}


def confused_pairs(pred: np.ndarray, labels: np.ndarray, class_names: Sequence[str], n: int = 10
                   ) -> list[dict]:
    """The ``n`` most frequent (true, predicted) confusions."""
    wrong = pred != labels
    if not wrong.any():
        return []
    C = len(class_names)
    counts = np.bincount(labels[wrong] * C + pred[wrong], minlength=C * C)
    top = np.argsort(-counts, kind="stable")[:n]
    return [{"true": class_names[i // C], "predicted": class_names[i % C], "count": int(counts[i])}
            for i in top if counts[i] > 0]


def provenance(encoder: Encoder | None, knowledge: Knowledge, bank: TextBank | None = None,
               knowledge_source: str | None = None, extra: dict | None = None) -> dict:
    """What produced a report: package, model, knowledge, templates, settings, machine."""
    from .knowledge import file_sha256

    kfile = None
    if knowledge_source and os.path.isfile(knowledge_source):
        kfile = {"path": os.path.abspath(knowledge_source), "sha256": file_sha256(knowledge_source)}
    out = {
        "coderclip_version": __version__,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None,
        "model": encoder.describe() if encoder is not None else None,
        "knowledge": {"name": knowledge.name, "source": knowledge_source, "file": kfile,
                      "content_sha256": bank.knowledge_digest if bank else None,
                      "domain": knowledge.domain, "classes": len(knowledge),
                      "provenance": knowledge.provenance},
        "templates_version": TEMPLATES_VERSION,
        "text_bank": {t: bank.count(t) for t in TEXT_TYPES} if bank is not None else None,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "seed": None,
        "labels_read_after_predictions": True,
    }
    if extra:
        out.update(extra)
    return out


def evaluate(encoder: Encoder, knowledge: Knowledge, dataset, *, tau: float = DEFAULT_TAU,
             top_k: int = DEFAULT_TOP_K, taus: Sequence[float] = DEFAULT_TAUS,
             ks: Sequence[int] = DEFAULT_KS, batch_size: int = 64, num_workers: int | None = None,
             cache: bool = True, show_progress_bar: bool = False,
             knowledge_source: str | None = None) -> dict:
    """Evaluate every method on a labelled :class:`~coderclip.datasets.ImageDataset`.

    Order of work: align the knowledge to the dataset's classes (by name), build the text bank,
    embed the images, compute all predictions, and only then read the labels.
    """
    from .images import encode_image_files

    kn = knowledge.align(dataset.class_names)
    bank = TextBank.build(kn, encoder, types=(*TEXT_TYPES,), cache=cache,
                          show_progress_bar=show_progress_bar)
    enc = encode_image_files(encoder, dataset.paths, batch_size=batch_size, num_workers=num_workers,
                             show_progress_bar=show_progress_bar)
    if not enc.kept:
        raise DatasetError(f"none of the {len(dataset)} images of {dataset.name} could be read")
    preds = predict_zero_shot(enc.embeddings, bank, tau=tau, top_k=top_k, taus=taus, ks=ks)
    labels = dataset.labels()[np.asarray(enc.kept, dtype=np.int64)]  # read only now
    report = {"format": REPORT_FORMAT, "version": REPORT_VERSION,
              "dataset": dataset.describe(),
              "skipped_images": [{"path": p, "reason": r} for p, r in enc.failures]}
    report.update(score_zero_shot(preds, labels, kn.class_names))
    report["provenance"] = provenance(encoder, kn, bank, knowledge_source)
    return report
