"""Choosing α and β on validation data: a coarse grid, then a finer grid around its best point.

Each grid is evaluated in one batched pass: for a block of validation queries the evidence for
every β is one ``[B, n, C]`` tensor, from which the range of α where each query is classified
correctly follows in closed form, so every (α, β) point costs one comparison per query. The
Python loop runs over query blocks, never over grid points.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import torch

from ..errors import ConfigError
from .cache_model import CacheModel
from .defaults import DEFAULT_REFINE

#: Coarse α grid: 0 (zero-shot) and 1/16 … 64 in steps of √2.
COARSE_ALPHAS = (0.0, *(2.0 ** (k / 2) for k in range(-8, 13)))
#: Coarse β grid: 1/4 … 64 in steps of 2.
COARSE_BETAS = tuple(2.0 ** k for k in range(-2, 7))
#: Largest temporary of one grid block (numbers); 2**26 float32 = 256 MiB.
DEFAULT_BLOCK_ELEMS = 1 << 26

#: Validation rows: a tensor, or a function ``(start, stop) -> rows`` that computes them on demand
#: (so ``[N, S]`` affinities and ``[N, C]`` logits are never held whole for large N).
Rows = torch.Tensor | Callable[[int, int], torch.Tensor]


def _rows(t: Rows, start: int, stop: int) -> torch.Tensor:
    return t(start, stop) if callable(t) else t[start:stop]


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Grid settings. ``refine``: points per axis of the second grid, spanning the coarse best
    point's neighbours (0 or 1: no refinement). ``extend``: how many times the coarse grid may
    grow past its largest α or β when the best point lies on that edge (4 more values each time,
    continuing the grid's last ratio)."""

    alphas: tuple[float, ...] = COARSE_ALPHAS
    betas: tuple[float, ...] = COARSE_BETAS
    refine: int = DEFAULT_REFINE
    extend: int = 2
    block_elems: int = DEFAULT_BLOCK_ELEMS

    def __post_init__(self) -> None:
        for name in ("alphas", "betas"):
            values = tuple(float(v) for v in getattr(self, name))
            if not values or any(not math.isfinite(v) or v < 0 for v in values):
                raise ConfigError(f"{name} must be a non-empty list of finite values >= 0, got {values}")
            object.__setattr__(self, name, tuple(sorted(set(values))))
        if self.refine < 0 or self.extend < 0:
            raise ConfigError(f"refine and extend must be >= 0, got {self.refine}, {self.extend}")

    def fixing(self, alpha: float | None = None, beta: float | None = None) -> SearchSpace:
        """The same space with α and/or β held at one value."""
        return dataclasses.replace(
            self, alphas=(alpha,) if alpha is not None else self.alphas,
            betas=(beta,) if beta is not None else self.betas)


@dataclasses.dataclass
class GridResult:
    """Validation accuracy (percent) ``accuracy[i][j]`` at ``alphas[i]``, ``betas[j]``."""

    alphas: list[float]
    betas: list[float]
    accuracy: list[list[float]]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SearchResult:
    """The chosen α, β, their validation accuracy, and both grids (for reports)."""

    alpha: float
    beta: float
    val_accuracy: float
    zero_shot_val_accuracy: float
    n_val: int
    coarse: GridResult
    refined: GridResult | None

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["coarse"] = self.coarse.to_dict()
        out["refined"] = self.refined.to_dict() if self.refined else None
        return out


def grid_correct(cache: CacheModel, zero_shot: Rows, affinity: Rows,
                 labels: torch.Tensor, alphas: Sequence[float], betas: Sequence[float],
                 block_elems: int = DEFAULT_BLOCK_ELEMS) -> torch.Tensor:
    """Number of correct validation predictions at every grid point ``[A, B]`` (int64).

    ``zero_shot`` ``[N, C]`` = 100 · x̂W, ``affinity`` ``[N, S]`` = Ã of the validation queries
    (tensors, or functions computing a block of rows: memory is then one block),
    ``labels`` ``[N]``. Time ``O(N · B · (S + C))``, memory ``O(block_elems)`` plus the inputs.

    For one query and one β, with z its zero-shot logits and e its cache evidence, the true class
    y wins at α iff α (e_y − e_c) ≥ z_c − z_y for every class c: the set of such α is an interval
    [lo, hi]. So each (query, β) costs O(C) and each α one comparison, instead of O(C) per
    (α, β) point. (An exact tie counts as correct here, whereas ``argmax`` picks the first class:
    the two differ only on ties, which real-valued logits essentially never produce.)
    """
    dev = cache.keys.device
    a = torch.as_tensor(list(alphas), dtype=torch.float32, device=dev)
    b = torch.as_tensor(list(betas), dtype=torch.float32, device=dev)
    labels = torch.as_tensor(labels, dtype=torch.long, device=dev)
    n, s, c = int(labels.numel()), cache.n_support, cache.n_classes
    per_query = len(b) * (s + 4 * c) + 2 * s + len(a) * len(b)
    rows = max(1, block_elems // per_query)
    correct = torch.zeros(len(a), len(b), dtype=torch.long, device=dev)
    for i in range(0, n, rows):
        y = labels[i:i + rows]
        ev = cache.evidence(_rows(affinity, i, i + len(y)), b)              # [B, n, C]
        de = ev.gather(2, y[None, :, None].expand(len(b), -1, 1)) - ev      # e_y − e_c
        z = _rows(zero_shot, i, i + len(y))
        dz = (z - z.gather(1, y[:, None]))[None]                            # z_c − z_y
        ratio = dz / de
        inf = torch.tensor(float("inf"), device=dev)
        lo = torch.where(de > 0, ratio, -inf).amax(-1)                      # [B, n]
        hi = torch.where(de < 0, ratio, inf).amin(-1)
        never = ((de == 0) & (dz > 0)).any(-1)
        ok = (a[:, None, None] >= lo) & (a[:, None, None] <= hi) & ~never   # [A, B, n]
        correct += ok.sum(-1)
    return correct


def select_best(accuracy: torch.Tensor) -> tuple[int, int]:
    """Index (i, j) of the best grid point ``accuracy`` ``[A, B]`` (axes sorted ascending).

    Ties (common on small validation sets) go to the point whose 3×3 neighbourhood has the
    higher mean accuracy (the middle of a plateau rather than its edge), then to the smaller α,
    then to the smaller β.
    """
    acc = accuracy.double().cpu()
    smooth = torch.nn.functional.avg_pool2d(acc[None, None], 3, stride=1, padding=1,
                                            count_include_pad=False)[0, 0]
    best = acc.max()
    cand = (acc == best).nonzero().tolist()
    i, j = min(cand, key=lambda ij: (-float(smooth[ij[0], ij[1]]), ij[0], ij[1]))
    return i, j


def _around(values: Sequence[float], i: int, points: int) -> list[float]:
    lo, hi = values[max(i - 1, 0)], values[min(i + 1, len(values) - 1)]
    grid = torch.linspace(lo, hi, points, dtype=torch.float64).tolist() if hi > lo else []
    return sorted(set([round(v, 12) for v in grid] + [values[i]]))


def _on_top_edge(values: Sequence[float], i: int) -> bool:
    return len(values) > 1 and i == len(values) - 1 and values[-1] > 0


def _continued(values: list[float], more: int = 4) -> list[float]:
    """``values`` with ``more`` values beyond the last, at the ratio of the last two (or, after a
    zero, doubling)."""
    ratio = values[-1] / values[-2] if values[-2] > 0 else 2.0
    return values + [values[-1] * ratio ** k for k in range(1, more + 1)]


def search_alpha_beta(cache: CacheModel, zero_shot: Rows, affinity: Rows,
                      labels: torch.Tensor, space: SearchSpace | None = None) -> SearchResult:
    """Grid search of α and β on validation data: a coarse grid (extended past its top edge
    while the best point lies there, up to ``space.extend`` times), then refinement around its
    best point. The refined grid contains the coarse best point, so refinement never lowers
    validation accuracy.
    """
    space = space or SearchSpace()
    labels = torch.as_tensor(labels, dtype=torch.long, device=cache.keys.device)
    n = int(labels.numel())
    if n == 0:
        raise ConfigError("the validation set is empty: α and β cannot be searched")
    sizes = [len(t) for t in (affinity, zero_shot) if not callable(t)]
    if any(k != n for k in sizes):
        raise ConfigError(f"{n} validation labels but affinities or zero-shot logits for "
                          f"{sizes} images")

    def run(alphas: Sequence[float], betas: Sequence[float]) -> tuple[GridResult, tuple[int, int]]:
        acc = grid_correct(cache, zero_shot, affinity, labels, alphas, betas, space.block_elems)
        acc = acc.double() * (100.0 / n)
        return GridResult(list(alphas), list(betas), acc.tolist()), select_best(acc)

    alphas, betas = list(space.alphas), list(space.betas)
    coarse, (i, j) = run(alphas, betas)
    for _ in range(space.extend):   # the best point on the top edge: the optimum may lie beyond
        grow_a, grow_b = _on_top_edge(alphas, i), _on_top_edge(betas, j)
        if not (grow_a or grow_b):
            break
        alphas, betas = _continued(alphas) if grow_a else alphas, _continued(betas) if grow_b else betas
        coarse, (i, j) = run(alphas, betas)
    final, (fi, fj) = coarse, (i, j)
    refined = None
    if space.refine > 1:
        alphas = _around(alphas, i, space.refine)
        betas = _around(betas, j, space.refine)
        if len(alphas) * len(betas) > 1:
            refined, (fi, fj) = run(alphas, betas)
            final = refined
    step = max(1, space.block_elems // max(1, cache.n_classes))
    hits = sum(int((_rows(zero_shot, i, min(i + step, n)).argmax(1) == labels[i:i + step]).sum())
               for i in range(0, n, step))
    zs = hits * 100.0 / n
    return SearchResult(alpha=final.alphas[fi], beta=final.betas[fj],
                        val_accuracy=final.accuracy[fi][fj], zero_shot_val_accuracy=zs, n_val=n,
                        coarse=coarse, refined=refined)
