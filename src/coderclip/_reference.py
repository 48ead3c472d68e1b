"""Straightforward loop implementations of the CODER scorer, written from docs/method.md.

They exist to check the vectorised scorer (tests compare both on random inputs) and as the speed
baseline in benchmarks/ (the structure of the authors' release: a Python loop over classes for
stage 1, loops over images and candidate pairs for the rerank). Never used on a hot path.
"""

from __future__ import annotations

import torch

from .textbank import TEXT_TYPES, TextBank

_T = {t: i for i, t in enumerate(TEXT_TYPES)}


def _texts(bank: TextBank, c: int, kinds: tuple[str, ...], other: int | None = None) -> torch.Tensor:
    m = torch.zeros_like(bank.entry_type, dtype=torch.bool)
    for k in kinds:
        m |= bank.entry_type == _T[k]
    m &= bank.entry_class == c
    if other is not None:
        m &= bank.entry_other == other
    return bank.embeddings[bank.entry_row[m]].double()


def loop_heuristic_scores(x: torch.Tensor, bank: TextBank, types: tuple[str, ...]) -> torch.Tensor:
    """Stage-1 scores ``[N, C]``, one class at a time."""
    x = x.double()
    out = torch.empty(x.shape[0], bank.n_classes, dtype=torch.float64)
    group_kinds = tuple(k for k in ("attribute", "analogous") if k in types)
    name_kinds = ("name",) + (("synonym",) if "synonym" in types else ())
    for c in range(bank.n_classes):
        g = _texts(bank, c, group_kinds) if group_kinds else torch.empty(0, x.shape[1], dtype=torch.float64)
        n = _texts(bank, c, name_kinds)
        group = (x @ g.T).sum(dim=1)
        best = (x @ n.T).max(dim=1).values
        out[:, c] = 100.0 * (group + best) / (g.shape[0] + 1)
    return out


def loop_rerank(x: torch.Tensor, scores: torch.Tensor, bank: TextBank, top_k: int, tau: float
                ) -> torch.Tensor:
    """Final predictions ``[N]``, one image and one candidate pair at a time."""
    x = x.double()
    preds = []
    for i in range(x.shape[0]):
        s = scores[i].double()
        order = sorted(range(len(s)), key=lambda c: (-float(s[c]), c))
        k = min(top_k, len(s))
        cands = order[:k]
        if k < 2:
            preds.append(cands[0])
            continue
        top2 = torch.softmax(scores[i].float(), dim=0).topk(2).values  # float32, as the scorer
        if (top2[0] - top2[1]).item() >= tau:
            preds.append(cands[0])
            continue
        best, best_r = cands[0], None
        for c in cands:
            acc = 0.0
            for o in cands:
                if o == c:
                    continue
                mine, theirs = _texts(bank, c, ("contrast",), o), _texts(bank, o, ("contrast",), c)
                if mine.shape[0] and theirs.shape[0]:
                    acc += float((x[i] @ mine.T).mean() - (x[i] @ theirs.T).mean())
            r = acc / (k - 1)
            if best_r is None or r > best_r:
                best, best_r = c, r
        preds.append(best)
    return torch.tensor(preds)
