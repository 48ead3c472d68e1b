"""Straightforward loop implementations of the CODER scorer, written from docs/method.md.

They exist to check the vectorised scorer (tests compare both on random inputs) and as the speed
baseline in benchmarks/ (the structure of the authors' release: a Python loop over classes for
stage 1, loops over images and candidate pairs for the rerank). Never used on a hot path.
"""

from __future__ import annotations

import torch

from coderclip.bank.textbank import TEXT_TYPES, TextBank

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


class ReleaseLoopScorer:
    """CODER laid out and computed the way the authors' release does it: the speed baseline for
    benchmarks/ (our own code, written from docs/method.md and issue 8's description).

    Layout, built once: one matrix of general texts, class after class (each class's attribute
    and analogous rows, then its name and synonym rows) with a per-class list of the two counts;
    the one-vs-one texts in a nested dict ``{class: {other: [n, D] tensor}}`` kept on the CPU.

    Per batch (:meth:`heuristic_scores`): the text matrix is re-normalised, φ = x̂ T̂ᵀ is computed
    in full, then a Python loop over classes slices φ, takes the max over names, concatenates and
    averages. Rerank (:meth:`rerank`): a Python loop over images, candidates and other candidates;
    every pair lookup normalises the image again and moves that pair's texts to the device; a
    missing pair (KeyError) counts 0. Unlike the release it works in fp32 and never reads labels
    (method.md §8).
    """

    def __init__(self, bank: TextBank, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.n_classes = bank.n_classes
        et, ec, er, eo = bank.entry_type, bank.entry_class, bank.entry_row, bank.entry_other
        group = (et == _T["attribute"]) | (et == _T["analogous"])
        names = (et == _T["name"]) | (et == _T["synonym"])
        # class-major order: (class, names after group) then entry order
        general = group | names
        key = ec[general] * 2 + names[general].long()
        order = torch.argsort(key, stable=True)
        rows = er[general][order]
        self.general = bank.embeddings[rows].to(self.device)
        g_counts = torch.bincount(ec[group], minlength=self.n_classes).tolist()
        n_counts = torch.bincount(ec[names], minlength=self.n_classes).tolist()
        self.counts = list(zip(g_counts, n_counts))
        ovo = et == _T["contrast"]
        pair = ec[ovo] * self.n_classes + eo[ovo]
        order = torch.argsort(pair, stable=True)
        keys, sizes = torch.unique_consecutive(pair[order], return_counts=True)
        chunks = torch.split(bank.embeddings[er[ovo][order]], sizes.tolist())
        self.ovo: dict[int, dict[int, torch.Tensor]] = {}
        for k, t in zip(keys.tolist(), chunks):
            self.ovo.setdefault(k // self.n_classes, {})[k % self.n_classes] = t

    def heuristic_scores(self, x: torch.Tensor) -> torch.Tensor:
        """Stage-1 scores ``[N, C]`` for one batch, one class at a time."""
        x = torch.nn.functional.normalize(x.to(self.device).float(), dim=1)
        texts = torch.nn.functional.normalize(self.general, dim=1)
        phi = x @ texts.T
        cols, idx = [], 0
        for n_group, n_names in self.counts:
            best = phi[:, idx + n_group: idx + n_group + n_names].max(dim=1).values
            both = torch.cat((phi[:, idx: idx + n_group], best[:, None]), dim=1)
            cols.append(both.mean(dim=1, keepdim=True))
            idx += n_group + n_names
        return 100.0 * torch.cat(cols, dim=1)

    def _ovo_sims(self, image: torch.Tensor, c: int, other: int) -> torch.Tensor:
        image = image.to(self.device)
        image = image / image.norm(dim=-1, keepdim=True)
        return image @ self.ovo[c][other].T.to(self.device)

    def rerank(self, x: torch.Tensor, scores: torch.Tensor, top_k: int, tau: float) -> torch.Tensor:
        """Final predictions ``[N]`` for one batch: loops over images and candidate pairs."""
        k = min(top_k, scores.shape[1])
        candidates = scores.topk(k, dim=1).indices
        prediction = candidates[:, 0].clone()
        if k < 2:
            return prediction
        top2 = torch.softmax(scores.float(), dim=1).topk(2, dim=1).values
        chosen = torch.where(top2[:, 0] - top2[:, 1] < tau)[0]
        for i in chosen.tolist():
            image = x[i]
            cands = candidates[i].tolist()
            r = []
            for c in cands:
                terms = []
                for o in cands:
                    if o == c:
                        continue
                    try:
                        mine, theirs = self._ovo_sims(image, c, o), self._ovo_sims(image, o, c)
                        terms.append(mine.mean(dim=0) - theirs.mean(dim=0))
                    except KeyError:
                        terms.append(0)
                r.append(sum(terms) / len(terms))
            # sorted() is stable: ties keep the stage-1 order
            ranked = sorted(zip(r, cands), key=lambda t: t[0], reverse=True)
            prediction[i] = ranked[0][1]
        return prediction

    def predict(self, x: torch.Tensor, top_k: int, tau: float, batch_size: int = 32) -> torch.Tensor:
        """Stage 1 + rerank for all images, in batches (the release's test loader uses 32)."""
        out = []
        for start in range(0, x.shape[0], batch_size):
            xb = x[start:start + batch_size]
            out.append(self.rerank(xb, self.heuristic_scores(xb), top_k, tau).cpu())
        return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
