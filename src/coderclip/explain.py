"""Why an image got its class: the texts whose similarities made the winning score, and, when the
one-vs-one rerank changed the answer, the contrast texts that decided it.

Both scores are linear in the image embedding, so each text's share is exact:

* stage 1 (CODER heuristic): s_c = Σ_t w_t · x̂·t̂ with w_t = 100 / (|G_c| + 1) for every attribute and
  analogous text of c and for the single best-matching name/synonym prompt (the others weigh 0);
  plain CLIP: the name prompt with w = 100; a normalised mean of texts (template ensemble, CuPL):
  w = 100 / ‖Σ t̂‖; a mean (DCLIP): w = 100 / n_c; WaffleCLIP's mean over S descriptor sets:
  w = 100 / (S · n_{c,s}). The shares sum to s_c.
* rerank: r_c = Σ_{c'} [mean_{O(c|c')} x̂·t̂ − mean_{O(c'|c)} x̂·t̂] / (K − 1) over the other candidates
  c' whose pair has texts both ways, so a text of O(c|c') weighs +1 / (|O(c|c')| (K − 1)) and a text of
  O(c'|c) weighs −1 / (|O(c'|c)| (K − 1)). The shares sum to r_c.

The functions here are pure batch functions on tensors: per batch they gather only the texts of
each sample's winning class (and of its candidate pairs), never a ``[N, all texts]`` matrix.
"""

from __future__ import annotations

import dataclasses

import torch

from .bank.textbank import TEXT_TYPES, TextBank
from .errors import ConfigError

_T = {t: i for i, t in enumerate(TEXT_TYPES)}
#: method -> (how its stage-1 score combines texts, the text types it reads):
#: "coder": the heuristic rule; "sum": 100 · Σ x̂·t̂ (one name prompt); "mean": 100 · mean x̂·t̂;
#: "unit-mean": 100 · x̂ · normalise(Σ t̂); "seed-mean": the mean over descriptor sets (``other``)
#: of each set's "mean". Classes with none of the texts fall back to their name prompt, as the
#: baselines do.
SCORERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "coder": ("coder", ("attribute", "analogous", "name", "synonym")),
    "coder-rerank": ("coder", ("attribute", "analogous", "name", "synonym")),
    "clip": ("sum", ("name",)),
    "clip-ensemble": ("unit-mean", ("ensemble",)),
    "dclip": ("mean", ("descriptor",)),
    "cupl": ("unit-mean", ("attribute", "analogous")),
    "cupl-templates": ("unit-mean", ("attribute", "analogous", "ensemble")),
    "waffle": ("seed-mean", ("noise",)),
}


@dataclasses.dataclass
class ExplainIndex:
    """A bank's texts grouped by class and by contrast pair (CSR layout), with their weights.

    Class texts: entries ``class_ptr[c]:class_ptr[c + 1]`` of ``class_row`` (bank row),
    ``class_type`` (index into :data:`TEXT_TYPES`), ``class_weight`` (share per unit similarity)
    and ``class_is_name`` (name/synonym prompts: only the best one counts). Contrast texts:
    ``pair_key`` sorted ``c · C + c'``; entries ``pair_ptr[p]:pair_ptr[p + 1]`` of ``pair_row``
    are the texts of O(c|c').
    """

    n_classes: int
    embeddings: torch.Tensor
    class_ptr: torch.Tensor
    class_row: torch.Tensor
    class_type: torch.Tensor
    class_weight: torch.Tensor
    class_is_name: torch.Tensor
    pair_key: torch.Tensor
    pair_ptr: torch.Tensor
    pair_row: torch.Tensor

    @classmethod
    def from_bank(cls, bank: TextBank, method: str = "coder",
                  types: tuple[str, ...] | None = None) -> ExplainIndex:
        """The index for the stage-1 score of ``method`` (a key of :data:`SCORERS`) over the
        bank's texts of ``types`` (default: every type in the bank)."""
        if method not in SCORERS:
            raise ConfigError(f"no explanation for method {method!r}; expected one of "
                              f"{', '.join(SCORERS)}")
        kind, wanted = SCORERS[method]
        types = tuple(types) if types is not None else bank.types
        C, emb = bank.n_classes, bank.embeddings.float()
        et, ec, er = bank.entry_type, bank.entry_class, bank.entry_row

        def of(*names: str) -> torch.Tensor:
            m = torch.zeros_like(et, dtype=torch.bool)
            for n in names:
                if n in types or n == "name":   # the name prompt is always scored
                    m |= et == _T[n]
            return m

        names = torch.zeros_like(et, dtype=torch.bool)   # texts of which only the best counts
        if kind == "coder":
            group = of("attribute", "analogous")
            names = of("name", "synonym")
            keep = group | names
            weight = (100.0 / (torch.bincount(ec[group], minlength=C).float() + 1.0))[ec]
        elif kind == "sum":
            keep, weight = of(*wanted), torch.full(ec.shape, 100.0)
        else:
            keep = of(*wanted)
            count = torch.bincount(ec[keep], minlength=C)
            fallback = (et == _T["name"]) & (count[ec] == 0)       # classes with none of the texts
            if kind == "mean":
                weight = 100.0 / count.clamp_min(1).float()[ec]
            elif kind == "unit-mean":
                total = torch.zeros(C, emb.shape[1]).index_add_(0, ec[keep], emb[er[keep]])
                weight = (100.0 / total.norm(dim=1).clamp_min(1e-12))[ec]
            else:   # seed-mean: the descriptor set sits in ``entry_other``
                other = bank.entry_other.clamp_min(0)
                n_sets = int(torch.unique(other[keep]).numel()) or 1
                per_set = torch.zeros(C, int(other.max()) + 1 if other.numel() else 1)
                per_set.index_put_((ec[keep], other[keep]), torch.ones(int(keep.sum())), accumulate=True)
                weight = 100.0 / (n_sets * per_set[ec, other].clamp_min(1))
            weight = torch.where(fallback, torch.full_like(weight, 100.0), weight)
            keep = keep | fallback
        idx = torch.nonzero(keep).squeeze(1)
        idx = idx[torch.argsort(ec[idx], stable=True)]       # class-major, entry order within a class
        class_ptr = torch.zeros(C + 1, dtype=torch.long)
        class_ptr[1:] = torch.cumsum(torch.bincount(ec[idx], minlength=C), 0)

        o = torch.nonzero(et == _T["contrast"]).squeeze(1) if "contrast" in types \
            else torch.zeros(0, dtype=torch.long)
        keys = ec[o] * C + bank.entry_other[o]
        order = torch.argsort(keys, stable=True)
        pair_key, counts = torch.unique_consecutive(keys[order], return_counts=True)
        pair_ptr = torch.zeros(len(pair_key) + 1, dtype=torch.long)
        pair_ptr[1:] = torch.cumsum(counts, 0)
        return cls(n_classes=C, embeddings=emb, class_ptr=class_ptr, class_row=er[idx],
                   class_type=et[idx], class_weight=weight[idx].float(),
                   class_is_name=names[idx], pair_key=pair_key, pair_ptr=pair_ptr,
                   pair_row=er[o[order]])


@dataclasses.dataclass
class TextShares:
    """Top texts per sample, ``[N, k]`` each, best first; ``row`` is -1 where a sample has fewer.

    ``row``: bank row of the text; ``type``: index into :data:`TEXT_TYPES`; ``about``: the class the
    text describes; ``versus``: the contrasted class (-1 for class texts); ``similarity``: x̂·t̂;
    ``contribution``: the text's share of the score (stage-1 score, or rerank score r).
    """

    row: torch.Tensor
    type: torch.Tensor
    about: torch.Tensor
    versus: torch.Tensor
    similarity: torch.Tensor
    contribution: torch.Tensor


def _ragged(ptr: torch.Tensor, segments: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions ``[S, L]`` of the entries of ``segments`` ``[S]`` in a CSR array with ``ptr``
    (L = longest segment) and their validity mask."""
    start, length = ptr[segments], ptr[segments + 1] - ptr[segments]
    width = int(length.max()) if length.numel() else 0
    offs = torch.arange(width)
    valid = offs[None, :] < length[:, None]
    pos = torch.where(valid, start[:, None] + offs[None, :], torch.zeros_like(valid, dtype=torch.long))
    return pos, valid


def _top(contrib: torch.Tensor, valid: torch.Tensor, k: int, **cols: torch.Tensor) -> TextShares:
    """The ``k`` largest contributions per row among the valid entries."""
    k = min(k, contrib.shape[1])
    masked = contrib.masked_fill(~valid, float("-inf"))
    top = masked.topk(k, dim=1)
    ok = torch.isfinite(top.values)
    out = {name: torch.gather(c, 1, top.indices).masked_fill(~ok, -1) for name, c in cols.items()}
    return TextShares(contribution=top.values.masked_fill(~ok, 0.0), **out)


def class_text_shares(x: torch.Tensor, winners: torch.Tensor, index: ExplainIndex, k: int = 5
                      ) -> TextShares:
    """The ``k`` texts that contributed most to each sample's stage-1 score of ``winners`` ``[N]``.

    ``x`` ``[N, D]`` unit image embeddings. Work and memory: N × (texts of one class) × D.
    """
    x = x.detach().float().cpu()
    winners = winners.cpu()
    pos, valid = _ragged(index.class_ptr, winners)
    rows = index.class_row[pos]
    sims = torch.einsum("nld,nd->nl", index.embeddings[rows], x)
    name = index.class_is_name[pos] & valid
    if name.any():   # only the best name/synonym prompt counts (the max in the rule)
        best = sims.masked_fill(~name, float("-inf")).argmax(dim=1, keepdim=True)
        is_best = torch.zeros_like(name).scatter_(1, best, True)
        valid = valid & (~name | is_best)
    contrib = sims * index.class_weight[pos]
    about = winners[:, None].expand_as(pos)
    return _top(contrib, valid, k, row=rows, type=index.class_type[pos], about=about,
                versus=torch.full_like(pos, -1), similarity=sims)


def contrast_text_shares(x: torch.Tensor, winners: torch.Tensor, candidates: torch.Tensor,
                         index: ExplainIndex, k: int = 5) -> TextShares:
    """The ``k`` contrast texts that contributed most to each winner's rerank score r (see module
    docstring); ``candidates`` ``[N, K]`` are the rerank's candidates (the winner among them).

    Work and memory: N × 2K × (texts of one pair) × D.
    """
    x = x.detach().float().cpu()
    winners, candidates = winners.cpu(), candidates.cpu()
    N, K = candidates.shape
    C, P = index.n_classes, index.pair_key.numel()
    if K < 2 or P == 0 or N == 0:
        return _top(torch.zeros(N, 0), torch.zeros(N, 0, dtype=torch.bool), k,
                    **{n: torch.zeros(N, 0, dtype=torch.long) for n in ("row", "type", "about", "versus")},
                    similarity=torch.zeros(N, 0))
    w = winners[:, None].expand(N, K)
    keys = torch.stack([w * C + candidates, candidates * C + w], dim=2)      # [N, K, 2]: O(w|c'), O(c'|w)
    p = torch.searchsorted(index.pair_key, keys).clamp_max(P - 1)
    found = index.pair_key[p] == keys
    usable = found.all(dim=2) & (candidates != w)                            # both directions exist
    seg = p.reshape(-1)
    pos, valid = _ragged(index.pair_ptr, seg)
    n_texts = (index.pair_ptr[seg + 1] - index.pair_ptr[seg]).clamp_min(1).float()
    sign = torch.tensor([1.0, -1.0]).repeat(N * K)
    weight = sign / (n_texts * (K - 1))                                      # [N*K*2]
    valid = valid & usable[:, :, None].expand(N, K, 2).reshape(-1)[:, None]
    rows = index.pair_row[pos]
    xe = x[:, None, None, :].expand(N, K, 2, x.shape[1]).reshape(N * K * 2, -1)
    sims = torch.einsum("sld,sd->sl", index.embeddings[rows], xe)
    contrib = sims * weight[:, None]
    about = torch.stack([w, candidates], dim=2).reshape(-1)[:, None].expand_as(pos)
    versus = torch.stack([candidates, w], dim=2).reshape(-1)[:, None].expand_as(pos)
    L = pos.shape[1]

    def per_sample(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(N, K * 2 * L)

    return _top(per_sample(contrib), per_sample(valid), k, row=per_sample(rows),
                type=torch.full((N, K * 2 * L), _T["contrast"]), about=per_sample(about),
                versus=per_sample(versus), similarity=per_sample(sims))


def shares_to_dicts(shares: TextShares, texts: list[str], class_names: list[str]) -> list[list[dict]]:
    """Readable rows per sample: text, type, class (and ``versus`` for contrasts), similarity,
    contribution; padding left out."""
    cols = {f.name: getattr(shares, f.name).tolist() for f in dataclasses.fields(shares)}
    out = []
    for i in range(len(cols["row"])):
        items = []
        for j, row in enumerate(cols["row"][i]):
            if row < 0:
                continue
            item = {"text": texts[row], "type": TEXT_TYPES[cols["type"][i][j]],
                    "class": class_names[cols["about"][i][j]]}
            if cols["versus"][i][j] >= 0:
                item["versus"] = class_names[cols["versus"][i][j]]
            item["similarity"] = round(float(cols["similarity"][i][j]), 6)
            item["contribution"] = round(float(cols["contribution"][i][j]), 6)
            items.append(item)
        out.append(items)
    return out
