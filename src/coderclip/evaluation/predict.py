"""Label-free predictions of every zero-shot method, batch by batch.

Methods compared on the same image embeddings: CLIP with the name prompt, CLIP with the template
ensemble, CODER (heuristic classifier), CODER + one-vs-one rerank; plus the ablation ladder
P → +Att → +Ana → +Syn → +rerank and the rerank's predictions as a function of τ and K.
Nothing here reads a label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from ..scoring import (DEFAULT_TAU, DEFAULT_TOP_K, CoderTables, clip_scores, heuristic_scores,
                      move_to_front, rerank_top_k)
from ..bank.textbank import TextBank

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
