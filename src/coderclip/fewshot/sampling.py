"""The few-shot protocol's sampling: K support images per class from the train split and
min(K, 4) validation images per class, drawn with a seed.

Each class's images are put in one seeded random order and the first K are taken, so for a given
seed the support sets are nested (the 1-shot set is inside the 2-shot set, and so on). Only the
train and validation labels are read here; the test split never passes through this module.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError
from .defaults import DEFAULT_SEEDS, DEFAULT_SHOTS, VAL_PER_CLASS

_TRAIN_STREAM, _VAL_STREAM = 0, 1


def class_orders(labels: np.ndarray, n_classes: int, seed: int, stream: int = _TRAIN_STREAM
                 ) -> list[np.ndarray]:
    """For each class, the indices of its items in a seeded random order.

    One stable sort groups the items by class: ``O(N log N + C)``, not one pass over the labels
    per class (which was ``O(N · C)``: 11 minutes per call on 13M images × 21k classes).
    """
    labels = np.asarray(labels, dtype=np.int64)
    rng = np.random.default_rng([int(seed), int(stream)])
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n_classes + 1))
    return [rng.permutation(order[bounds[c]:bounds[c + 1]]) for c in range(n_classes)]


def take_per_class(orders: Sequence[np.ndarray], k: int) -> np.ndarray:
    """The first ``k`` indices of every class, class by class (fewer where a class has fewer)."""
    parts = [o[:k] for o in orders]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


@dataclasses.dataclass(frozen=True)
class FewShotSplit:
    """One (seed, K) draw: indices into the train split (support) and into the val split."""

    seed: int
    shots: int
    support: np.ndarray
    val: np.ndarray
    short_classes: tuple[int, ...] = ()

    def describe(self) -> dict:
        return {"seed": self.seed, "shots": self.shots, "support_images": int(len(self.support)),
                "val_images": int(len(self.val)), "classes_with_fewer_shots": list(self.short_classes)}


def check_shots(shots: Sequence[int], train_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Train images per class ``[C]``; raises if a K exceeds what every class has (a "100-shot"
    run on 4 images per class would be a 4-shot run under another name)."""
    counts = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes)
    most = int(counts.max()) if len(counts) else 0
    if shots and max(shots) > most:
        raise ConfigError(f"--shots {max(shots)} asks for more training images per class than any "
                          f"class has (at most {most}); the largest K this data supports is {most}")
    return counts


def plan_splits(train_labels: np.ndarray, val_labels: np.ndarray, n_classes: int,
                shots: Sequence[int] = DEFAULT_SHOTS, seeds: Sequence[int] = DEFAULT_SEEDS,
                val_per_class: int = VAL_PER_CLASS) -> dict[tuple[int, int], FewShotSplit]:
    """Every (seed, K) split of the protocol. A class with fewer than K train images contributes
    all it has (listed in ``short_classes``); a class with no train image is an error."""
    shots = sorted({int(k) for k in shots})
    if not shots or shots[0] < 1:
        raise ConfigError(f"shots must be positive integers, got {list(shots)}")
    if not seeds:
        raise ConfigError("give at least one seed")
    train_counts = check_shots(shots, train_labels, n_classes)
    empty = np.flatnonzero(train_counts == 0)
    if len(empty):
        raise ConfigError(f"{len(empty)} classes have no train image (first: class {int(empty[0])})")
    val_counts = np.bincount(np.asarray(val_labels, dtype=np.int64), minlength=n_classes)
    if len(val_labels) and (val_counts == 0).any():
        missing = np.flatnonzero(val_counts == 0)
        raise ConfigError(f"{len(missing)} classes have no validation image (first: class {int(missing[0])})")
    out = {}
    for seed in seeds:
        train_orders = class_orders(train_labels, n_classes, seed, _TRAIN_STREAM)
        val_orders = class_orders(val_labels, n_classes, seed, _VAL_STREAM)
        for k in shots:
            short = tuple(int(c) for c in np.flatnonzero(train_counts < k))
            out[(int(seed), k)] = FewShotSplit(
                seed=int(seed), shots=k, support=take_per_class(train_orders, k),
                val=take_per_class(val_orders, min(k, val_per_class)), short_classes=short)
    return out
