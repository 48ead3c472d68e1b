"""CODER scoring: neighbour vectors, the heuristic classifier, the one-vs-one rerank and the plain
CLIP baselines, all as whole-batch tensor operations (no Python loop over classes, images or pairs).

Notation (docs/method.md): x̂ are unit image embeddings ``[N, D]``; for class c, G_c are its
attribute and analogous texts, N_c its name prompt and synonym prompts, O(c|c') its one-vs-one
texts against class c'.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from .defaults import DEFAULT_TAU, DEFAULT_TOP_K
from .errors import ConfigError
from .bank.textbank import TEXT_TYPES, TextBank

_T = {t: i for i, t in enumerate(TEXT_TYPES)}


@dataclasses.dataclass
class CoderTables:
    """What the scorer needs from a text bank, precomputed once and placed on one device.

    ``general_rows`` ``[K]``: bank rows of the distinct general texts (the CODER vector's axes).
    ``group_sum`` ``[C, D]``: Σ of the embeddings of G_c (attributes and analogous texts);
    ``group_size`` ``[C]``: |G_c|. ``name_emb`` ``[M, D]`` / ``name_class`` ``[M]``: N_c texts.
    ``pair_key`` ``[P]`` (sorted, ``c * C + c'``) and ``pair_mean`` ``[P, D]``: mean embedding of
    O(c|c'). ``prompt_emb`` ``[C, D]``: one name prompt per class (CLIP baseline);
    ``ensemble_emb`` ``[C, D]`` or ``None``: normalised mean of the ensemble templates.

    ``score_emb`` ``[C + M', D]`` is what the heuristic multiplies by, in one matrix product: row c
    is Σ G_c, plus the class's name prompt when N_c has that one text only (the max of one value
    is that value); then, bucket by bucket, the N_c rows of the classes with k ≥ 2 names, class
    after class. ``name_buckets``: ``(k, first column, classes [n_k])`` per bucket;
    ``nameless`` ``[*]``: classes with no name text (their score is -inf).
    """

    n_classes: int
    general_rows: torch.Tensor
    general_emb: torch.Tensor
    group_sum: torch.Tensor
    group_size: torch.Tensor
    name_emb: torch.Tensor
    name_class: torch.Tensor
    pair_key: torch.Tensor
    pair_mean: torch.Tensor
    prompt_emb: torch.Tensor
    ensemble_emb: torch.Tensor | None
    score_emb: torch.Tensor
    name_buckets: tuple[tuple[int, int, torch.Tensor], ...]
    nameless: torch.Tensor

    @classmethod
    def from_bank(cls, bank: TextBank, types: Sequence[str] | None = None,
                  device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32) -> CoderTables:
        """Tables for the text types in ``types`` (default: every type in the bank but noise).

        The name prompt is always used; leaving out "attribute" and "analogous" etc. gives the
        ablation ladder P, P+Att, P+Att+Ana, ...; ``("name", "noise")`` is CODER with its
        descriptions replaced by random ones (the first WaffleCLIP descriptor set).
        """
        # by default every CODER type in the bank; baseline-only texts (noise) only when asked
        types = tuple(types) if types is not None else tuple(t for t in bank.types if t != "noise")
        unknown = [t for t in types if t not in TEXT_TYPES]
        if unknown:
            raise ConfigError(f"unknown text type(s) {unknown}; expected some of {TEXT_TYPES}")
        C, emb = bank.n_classes, bank.embeddings.float()
        et, ec, er = bank.entry_type, bank.entry_class, bank.entry_row

        def of(*names: str) -> torch.Tensor:
            m = torch.zeros_like(et, dtype=torch.bool)
            for n in names:
                if n in types:
                    m |= et == _T[n]
            return m

        is_prompt = et == _T["name"]
        # "noise" (the ablation's stand-in for descriptions): the first random-descriptor set
        noise = of("noise") & (bank.entry_other == 0)
        general_rows = torch.unique(er[is_prompt | of("synonym", "attribute", "analogous") | noise])
        g = of("attribute", "analogous") | noise
        group_sum = torch.zeros(C, emb.shape[1]).index_add_(0, ec[g], emb[er[g]])
        group_size = torch.bincount(ec[g], minlength=C).float()
        n = is_prompt | of("synonym")
        score_emb, name_buckets, nameless = _score_layout(group_sum, emb, er[n], ec[n], C)
        prompt_emb = torch.zeros(C, emb.shape[1])
        prompt_emb[ec[is_prompt]] = emb[er[is_prompt]]

        o = of("contrast")
        keys = ec[o] * C + bank.entry_other[o]
        pair_key, inverse = torch.unique(keys, return_inverse=True)
        pair_sum = torch.zeros(len(pair_key), emb.shape[1]).index_add_(0, inverse, emb[er[o]])
        pair_mean = pair_sum / torch.bincount(inverse, minlength=len(pair_key)).clamp_min(1)[:, None].float()

        ens = et == _T["ensemble"]  # baseline texts: available whenever the bank has them
        ensemble_emb = None
        if ens.any():
            s = torch.zeros(C, emb.shape[1]).index_add_(0, ec[ens], emb[er[ens]])
            ensemble_emb = s / s.norm(dim=1, keepdim=True).clamp_min(1e-12)

        tables = cls(
            n_classes=C, general_rows=general_rows, general_emb=emb[general_rows],
            group_sum=group_sum, group_size=group_size, name_emb=emb[er[n]], name_class=ec[n],
            pair_key=pair_key, pair_mean=pair_mean, prompt_emb=prompt_emb, ensemble_emb=ensemble_emb,
            score_emb=score_emb, name_buckets=tuple(name_buckets), nameless=nameless)
        return tables.to(device, dtype)

    def to(self, device: str | torch.device | None = None, dtype: torch.dtype | None = None) -> CoderTables:
        """A copy on ``device`` with floating-point tables in ``dtype`` (index tensors keep theirs)."""
        def put(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else t.dtype)

        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out = {k: put(v) if isinstance(v, torch.Tensor) or v is None else v for k, v in fields.items()}
        out["name_buckets"] = tuple((k, start, put(c)) for k, start, c in self.name_buckets)
        return CoderTables(**out)


def _score_layout(group_sum: torch.Tensor, emb: torch.Tensor, name_rows: torch.Tensor,
                  name_class: torch.Tensor, C: int
                  ) -> tuple[torch.Tensor, list[tuple[int, int, torch.Tensor]], torch.Tensor]:
    """The heuristic's fused matrix ``score_emb``, its name buckets and the nameless classes
    (see :class:`CoderTables`)."""
    count = torch.bincount(name_class, minlength=C)
    single = count[name_class] == 1
    base = group_sum.clone().index_add_(0, name_class[single], emb[name_rows[single]])
    order = torch.argsort(name_class, stable=True)          # class-major, entry order within a class
    rows, cls = name_rows[order], name_class[order]
    parts, buckets, start = [base], [], C
    for k in torch.unique(count[count >= 2]).tolist():
        in_bucket = count[cls] == k
        classes = torch.nonzero(count == k).squeeze(1)
        parts.append(emb[rows[in_bucket]])
        buckets.append((k, start, classes))
        start += k * classes.numel()
    return torch.cat(parts), buckets, torch.nonzero(count == 0).squeeze(1)


def coder_vectors(x: torch.Tensor, tables: CoderTables) -> torch.Tensor:
    """CODER vectors φ(x) ``[N, K]``: cosine similarity of each image to each distinct general text."""
    return x.to(tables.general_emb.dtype) @ tables.general_emb.T


def heuristic_scores(x: torch.Tensor, tables: CoderTables) -> torch.Tensor:
    """Stage-1 scores ``[N, C]`` (float32), exactly the paper's rule:

    s_c(x) = 100 · (Σ_{t∈G_c} x̂·t̂ + max_{t∈N_c} x̂·t̂) / (|G_c| + 1)

    One matrix product with ``score_emb`` gives, per class, x̂·Σ G_c (Σ x̂·t̂ = x̂·Σ t̂), already plus
    the name similarity for classes with a single name text; for the others the max over N_c is
    taken bucket by bucket (classes with k names: a ``[N, n_k, k]`` view, max over the last axis).
    """
    C = tables.n_classes
    sims = x.to(tables.score_emb.dtype) @ tables.score_emb.T   # [N, C + M'], in the tables' dtype
    # float32 from here, but only the C class columns: the name maxima are exact in any precision,
    # so the M' name columns of a half-precision product are never upcast (GPU memory traffic)
    scores = sims[:, :C].float()   # a view of sims when the tables are float32
    for k, start, classes in tables.name_buckets:
        best = sims[:, start:start + k * classes.numel()].unflatten(1, (classes.numel(), k)).amax(dim=2)
        scores.index_add_(1, classes, best.float())
    if tables.nameless.numel():
        scores.index_fill_(1, tables.nameless, float("-inf"))
    scale = 100.0 / (tables.group_size.float() + 1.0)
    # a strided view of sims would keep all C + M' columns alive: return a compact copy instead
    return scores.mul_(scale) if scores.is_contiguous() else scores * scale


def clip_scores(x: torch.Tensor, tables: CoderTables, ensemble: bool = False,
                logit_scale: float = 100.0, logit_bias: float = 0.0) -> torch.Tensor:
    """Plain CLIP zero-shot logits ``[N, C]``, ``logit_scale · cosine + logit_bias``: one name
    prompt per class, or the normalised mean of the template ensemble.

    The defaults (100, 0) are CLIP's usual fixed scale; pass the model's own
    (``encoder.logit_scale``, ``encoder.logit_bias``) for the probabilities it was trained to give.
    The ranking does not depend on them.
    """
    w = tables.ensemble_emb if ensemble else tables.prompt_emb
    if w is None:
        raise ConfigError("the text bank was built without ensemble templates")
    return cosine_logits(x, w, logit_scale, logit_bias)


def cosine_logits(x: torch.Tensor, class_emb: torch.Tensor, logit_scale: float = 100.0,
                  logit_bias: float = 0.0) -> torch.Tensor:
    """``logit_scale · x̂ · Wᵀ + logit_bias`` ``[N, C]`` in float32, for unit image embeddings
    ``x`` ``[N, D]`` and one unit embedding per class ``class_emb`` ``[C, D]``."""
    logits = (x.to(class_emb.dtype) @ class_emb.T).float().mul_(float(logit_scale))
    return logits.add_(float(logit_bias)) if logit_bias else logits


#: How logits become probabilities: a softmax over the classes (CLIP, CODER) or an independent
#: sigmoid per class (SigLIP, trained with a sigmoid loss; its values do not sum to 1).
PROBABILITY_KINDS = ("softmax", "sigmoid")


def probabilities(scores: torch.Tensor, kind: str = "softmax",
                  values: torch.Tensor | None = None) -> torch.Tensor:
    """Probabilities from logits ``scores`` ``[N, C]``: of every class, or only of ``values``
    ``[N, k]`` (some of each row's scores, e.g. its top k) without materialising ``[N, C]``
    probabilities."""
    if kind not in PROBABILITY_KINDS:
        raise ConfigError(f"unknown probability kind {kind!r}; expected one of {PROBABILITY_KINDS}")
    if kind == "sigmoid":
        return torch.sigmoid(scores if values is None else values)
    if values is None:
        return torch.softmax(scores, dim=1)
    return torch.exp(values - torch.logsumexp(scores, dim=1, keepdim=True))


def top_k_probabilities(scores: torch.Tensor, k: int, kind: str = "softmax",
                        rerank: RerankResult | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Top ``k`` classes ``[N, k]`` (best first) and their probabilities ``[N, k]`` from stage-1
    logits ``[N, C]``. With a ``rerank``, its winner is moved to the front and the numbers keep
    their places (the largest stays at rank 1; see :meth:`RerankResult.reorder_probabilities`)."""
    top = scores.topk(min(int(k), scores.shape[1]), dim=1)
    idx = top.indices if rerank is None else move_to_front(rerank.prediction, top.indices)
    return idx, probabilities(scores, kind, top.values)


@dataclasses.dataclass
class RerankResult:
    """Outcome of :func:`rerank_top_k` for a batch.

    ``prediction`` ``[N]``: final class per sample; ``candidates`` ``[N, K]``: stage-1 top-K
    classes (best first); ``reranked`` ``[N]`` bool: the sample was below the confidence gap;
    ``gap`` ``[N]``: p(top1) − p(top2); ``pair_scores`` ``[N, K]``: r_c for the candidates (0 for
    samples not reranked).
    """

    prediction: torch.Tensor
    candidates: torch.Tensor
    reranked: torch.Tensor
    gap: torch.Tensor
    pair_scores: torch.Tensor

    def ranking(self) -> torch.Tensor:
        """Candidates reordered: rerank winner first, the others in stage-1 order ``[N, K]``."""
        return move_to_front(self.prediction, self.candidates)

    def reorder_probabilities(self, proba: torch.Tensor) -> torch.Tensor:
        """Stage-1 probabilities ``[N, C]`` made to agree with the reranked order, in place.

        The candidates' stage-1 probabilities (sorted, best first) are handed out in the reranked
        order: the rerank winner gets the largest, the others follow. The set of numbers and every
        non-candidate class are unchanged, so a ranking by probability is the reranked ranking.
        """
        values = torch.gather(proba, 1, self.candidates)
        return proba.scatter_(1, self.ranking(), values)


def move_to_front(winner: torch.Tensor, ranking: torch.Tensor) -> torch.Tensor:
    """``ranking`` ``[N, k]`` with ``winner`` ``[N]`` moved to the front, the others keeping their
    order; a winner outside the ranking is put first and the last entry dropped."""
    is_win = ranking == winner[:, None]
    out = torch.gather(ranking, 1, torch.argsort((~is_win).float(), dim=1, stable=True))
    missing = ~is_win.any(dim=1)
    if missing.any():
        out[missing] = torch.cat([winner[missing, None], ranking[missing, :-1]], dim=1)
    return out


def confidence_gap(scores: torch.Tensor, top_values: torch.Tensor | None = None) -> torch.Tensor:
    """p(top1) − p(top2) of softmax(scores) ``[N]`` (scores already carry the ×100 scale).

    Computed as exp(s₁ − lse) − exp(s₂ − lse) from the two best scores and the log-sum-exp, without
    materialising the softmax; ``top_values`` ``[N, ≥2]`` (sorted top scores) saves a second topk.
    """
    if scores.shape[1] < 2:
        return torch.ones(scores.shape[0], device=scores.device)
    if top_values is None or top_values.shape[1] < 2:
        top_values = scores.topk(2, dim=1).values
    lse = torch.logsumexp(scores.float(), dim=1, keepdim=True)
    p = torch.exp(top_values[:, :2].float() - lse)
    return p[:, 0] - p[:, 1]


def pairwise_scores(x: torch.Tensor, candidates: torch.Tensor, tables: CoderTables) -> torch.Tensor:
    """r_c for each candidate ``[S, K]`` (float32):

    r_c = mean over c' ∈ C_K \\ {c} of [ mean_{t∈O(c|c')} x̂·t̂ − mean_{t∈O(c'|c)} x̂·t̂ ]

    A pair contributes only when both directions have texts; a pair without texts contributes 0
    ("no evidence") and still counts in the mean, which keeps r proportional to a tournament sum.

    By linearity r_c = x̂ · v_c with v_c = Σ_{c'} [mean O(c|c') − mean O(c'|c)] / (K − 1), a signed
    sum of rows of ``pair_mean``: two ``embedding_bag`` sums build the v_c ``[S·K, D]`` straight
    from the table (only the pairs that exist are read), then one dot product with x̂ per v_c.
    """
    S, K = candidates.shape
    C = tables.n_classes
    P = tables.pair_key.numel()
    if K < 2 or P == 0 or S == 0:
        return torch.zeros(S, K, device=x.device)
    keys = (candidates[:, :, None] * C + candidates[:, None, :]).reshape(-1)   # (c | c') for all i, j
    pos = torch.searchsorted(tables.pair_key, keys).clamp_max(P - 1)
    found = (tables.pair_key[pos] == keys).reshape(S, K, K)
    eye = torch.eye(K, dtype=torch.bool, device=found.device)
    valid = found & found.transpose(1, 2) & ~eye
    pos = pos.reshape(S, K, K)
    s_i, i_i, j_i = valid.nonzero(as_tuple=True)                              # row-major: bag (s, i)
    if s_i.numel() == 0:
        return torch.zeros(S, K, device=x.device)
    size = valid.sum(dim=2).reshape(-1)
    offsets = torch.cumsum(size, 0) - size
    bag = torch.nn.functional.embedding_bag   # plain sums: much faster than per-sample weights on CPU
    v = (bag(pos[s_i, i_i, j_i], tables.pair_mean, offsets, mode="sum")
         - bag(pos[s_i, j_i, i_i], tables.pair_mean, offsets, mode="sum"))   # [S*K, D]
    r = (v.reshape(S, K, -1) * x.to(v.dtype)[:, None, :]).sum(dim=2).float()
    return r / (K - 1)


def rerank_top_k(x: torch.Tensor, scores: torch.Tensor, tables: CoderTables,
                 top_k: int = DEFAULT_TOP_K, tau: float = DEFAULT_TAU,
                 chunk_size: int = 4096) -> RerankResult:
    """Stage 2 (the paper's CODER*): rerank the top-K classes of low-confidence samples by their
    one-vs-one evidence. Never looks at labels. Ties keep the stage-1 order.

    ``x`` ``[N, D]`` unit image embeddings, ``scores`` ``[N, C]`` stage-1 scores.
    """
    if top_k < 1:
        raise ConfigError(f"top_k must be at least 1, got {top_k}")
    N, C = scores.shape
    k = min(top_k, C)
    top = scores.topk(max(k, min(2, C)), dim=1)     # two at least: the gap needs them
    candidates = top.indices[:, :k]
    gap = confidence_gap(scores, top.values)
    reranked = gap < tau if k > 1 else torch.zeros(N, dtype=torch.bool, device=scores.device)
    pair = torch.zeros(N, k, device=scores.device)
    prediction = candidates[:, 0].clone()
    idx = reranked.nonzero().squeeze(1)
    for start in range(0, idx.numel(), chunk_size):  # bounded memory: K*K*D floats per sample
        sel = idx[start:start + chunk_size]
        r = pairwise_scores(x[sel], candidates[sel], tables)
        pair[sel] = r
        prediction[sel] = torch.gather(candidates[sel], 1, r.argmax(dim=1, keepdim=True)).squeeze(1)
    return RerankResult(prediction=prediction, candidates=candidates, reranked=reranked, gap=gap,
                        pair_scores=pair)
