"""Label-free predictions of every zero-shot method, batch by batch.

Methods compared on the same image embeddings: CLIP with the name prompt, CLIP with the template
ensemble, the training-free peers WaffleCLIP, DCLIP and CuPL-style (coderclip/baselines.py), CODER
(heuristic classifier), CODER + one-vs-one rerank; plus the ablation ladder
P → +Att → +Ana → +Syn → +rerank, the "noise" row (CODER with random descriptions) and the rerank's
predictions as a function of τ and K.
Nothing here reads a label.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from ..baselines import BaselineTables, prototype_scores
from ..bank.textbank import GENERAL_TYPES, METHOD_TYPES, TEXT_TYPES, TextBank
from ..defaults import DEFAULT_METHODS, ZERO_SHOT_METHODS
from ..errors import ConfigError, DatasetError
from ..scoring import (DEFAULT_TAU, DEFAULT_TOP_K, CoderTables, clip_scores, heuristic_scores,
                      move_to_front, rerank_top_k)

#: Every zero-shot method, in the order reports list them.
METHOD_LABELS = {"clip": "CLIP (name prompt)", "clip-ensemble": "CLIP (template ensemble)",
                 "waffle": "WaffleCLIP", "dclip": "DCLIP", "cupl": "CuPL-style",
                 "cupl-templates": "CuPL-style + templates",
                 "coder": "CODER", "coder-rerank": "CODER + rerank"}
assert tuple(METHOD_LABELS) == ZERO_SHOT_METHODS
#: The ablation row with the descriptions replaced by random words (text types of the heuristic).
NOISE_ROW = ("P+Noise", ("name", "noise"))


def check_methods(methods: Sequence[str] | None) -> tuple[str, ...]:
    """``methods`` validated (default :data:`DEFAULT_METHODS`), in report order."""
    if methods is None:
        return DEFAULT_METHODS
    bad = [m for m in methods if m not in METHOD_LABELS]
    if bad:
        raise ConfigError(f"unknown method(s) {', '.join(map(repr, bad))}; expected some of "
                          f"{', '.join(METHOD_LABELS)}")
    return tuple(m for m in METHOD_LABELS if m in set(methods))


def bank_types(methods: Sequence[str] | None = None) -> tuple[str, ...]:
    """The text types a run of ``methods`` needs (CODER + rerank is always run). The ablation's
    noise row comes with WaffleCLIP, whose random-descriptor texts it reuses; without WaffleCLIP
    no noise text is encoded."""
    needed = {t for m in (*check_methods(methods), "coder-rerank") for t in METHOD_TYPES[m]}
    return tuple(t for t in TEXT_TYPES if t in needed)
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


class NothingScored(DatasetError):
    """:meth:`ZeroShotPredictor.result` before any image was added."""


class ZeroShotPredictor:
    """Every method's predictions, accumulated batch by batch (no labels involved).

    Tables are built once; :meth:`add` scores a batch of unit embeddings ``[n, D]`` and keeps only
    small integer rankings (``[n, 5]`` int32 per method, ``[n]`` per τ / K), so memory grows by
    about 200 bytes per image whatever the number of classes; :meth:`result` returns them.
    ``device``: where scoring runs (default: the device of the first batch).
    """

    def __init__(self, bank: TextBank, tau: float = DEFAULT_TAU, top_k: int = DEFAULT_TOP_K,
                 taus: Sequence[float] = DEFAULT_TAUS, ks: Sequence[int] = DEFAULT_KS,
                 ablation: bool = True, device: str | torch.device | None = None,
                 dtype: torch.dtype | None = None, methods: Sequence[str] | None = None) -> None:
        self.bank, self.tau, self.top_k = bank, tau, top_k
        # which methods to score (default DEFAULT_METHODS); CODER + rerank always
        self.wanted = set(check_methods(methods)) | {"coder-rerank"}
        self.taus, self.ks, self.ablation = tuple(taus), tuple(ks), ablation
        self.device, self.dtype = device, dtype
        self.parts: dict[str, list[torch.Tensor]] = {}
        self._tables = None

    def _build(self, device: torch.device) -> None:
        dtype = self.dtype or torch.float32
        bank = self.bank
        full = CoderTables.from_bank(bank, device=device, dtype=dtype)
        ladder = {name: CoderTables.from_bank(bank, types=types, device=device, dtype=dtype)
                  for name, types in ABLATION.items()} if self.ablation else {}
        if self.ablation and "noise" in bank.types:
            ladder[NOISE_ROW[0]] = CoderTables.from_bank(bank, types=NOISE_ROW[1], device=device,
                                                         dtype=dtype)
        coder = CoderTables.from_bank(bank, types=tuple(t for t in bank.types if t in GENERAL_TYPES),
                                      device=device, dtype=dtype)
        peers = BaselineTables.from_bank(bank, device=device, dtype=dtype)
        prototypes = {m: p for m, p in (("dclip", peers.dclip), ("cupl", peers.cupl),
                                        ("cupl-templates", peers.cupl_templates))
                      if p is not None and m in self.wanted}
        waffle = peers.waffle if "waffle" in self.wanted else None
        self._tables = (full, coder, ladder, prototypes, waffle)

    def _put(self, key: str, value: torch.Tensor) -> None:
        self.parts.setdefault(key, []).append(value.to("cpu", torch.int32))

    def add(self, xb: torch.Tensor) -> None:
        """Score one batch ``[n, D]``; ``O(n · C)`` time and memory."""
        device = torch.device(self.device) if self.device is not None else xb.device
        if self._tables is None:
            self._build(device)
        full, coder, ladder, prototypes, waffle = self._tables
        xb = xb.to(device)
        put, wanted = self._put, self.wanted
        if "clip" in wanted:
            put("clip", _ranking(clip_scores(xb, full)))
        if full.ensemble_emb is not None and "clip-ensemble" in wanted:
            put("clip-ensemble", _ranking(clip_scores(xb, full, ensemble=True)))
        for m, p in prototypes.items():
            put(m, _ranking(prototype_scores(xb, p)))
        if waffle is not None:  # one ranking per random-descriptor set
            for seed in range(waffle.shape[0]):
                put("waffle" if seed == 0 else f"waffle@{seed}",
                    _ranking(prototype_scores(xb, waffle[seed])))
        s = heuristic_scores(xb, coder)
        rest = _ranking(s)
        if "coder" in wanted:
            put("coder", rest)
        for name, tables in ladder.items():
            put(f"ablation:{name}", _ranking(heuristic_scores(xb, tables)))
        rr = rerank_top_k(xb, s, full, top_k=self.top_k, tau=self.tau)
        put("coder-rerank", move_to_front(rr.prediction, rest))
        put("stage1", rr.candidates[:, 0])
        put("reranked", rr.reranked)
        always = rerank_top_k(xb, s, full, top_k=self.top_k, tau=float("inf"))
        for t in self.taus:
            put(f"tau:{t}", torch.where(always.gap < t, always.prediction, always.candidates[:, 0]))
        for k in self.ks:
            put(f"k:{k}", rerank_top_k(xb, s, full, top_k=k, tau=self.tau).prediction)

    def result(self) -> ZeroShotPredictions:
        """The predictions of every image added so far, in the order added."""
        if not self.parts:
            raise NothingScored("no image embeddings were given")
        cat = {k: torch.cat(v).numpy().astype(np.int64) for k, v in self.parts.items()}
        ranking = {k: v for k, v in cat.items()
                   if k in METHOD_LABELS or k.startswith(("ablation:", "waffle@"))}
        return ZeroShotPredictions(
            ranking=ranking, stage1=cat["stage1"], reranked=cat["reranked"].astype(bool),
            tau_sweep={t: cat[f"tau:{t}"] for t in self.taus},
            k_sweep={k: cat[f"k:{k}"] for k in self.ks}, tau=self.tau, top_k=self.top_k)


def predict_zero_shot(x: torch.Tensor, bank: TextBank, tau: float = DEFAULT_TAU,
                      top_k: int = DEFAULT_TOP_K, taus: Sequence[float] = DEFAULT_TAUS,
                      ks: Sequence[int] = DEFAULT_KS, ablation: bool = True,
                      batch_size: int = 8192, device: str | torch.device | None = None,
                      methods: Sequence[str] | None = None) -> ZeroShotPredictions:
    """All methods' predictions for unit image embeddings ``x`` ``[N, D]`` (no labels involved).

    ``methods``: which of :data:`METHOD_LABELS` to compute (default
    :data:`~coderclip.defaults.DEFAULT_METHODS`, those the bank has texts for); CODER + rerank and
    its sweeps are always computed.
    Works through the images in batches of ``batch_size`` (:class:`ZeroShotPredictor`), so memory
    stays bounded by one batch's ``[batch_size, C]`` scores plus the integer rankings.
    """
    dtype = x.dtype if x.device.type != "cpu" else None  # GPU embeddings keep their precision
    pred = ZeroShotPredictor(bank, tau=tau, top_k=top_k, taus=taus, ks=ks, ablation=ablation,
                             device=device, dtype=dtype, methods=methods)
    for start in range(0, x.shape[0], batch_size):
        pred.add(x[start:start + batch_size])
    return pred.result()
