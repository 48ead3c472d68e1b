"""The few-shot protocol end to end: sample shots and validation images per seed, embed, fit
every adapter (α, β chosen on validation data only), predict the test split, and only then read
the test labels.

Order of work in :func:`run_fewshot` (the test labels are read in the last step, once):

1. align the knowledge to the classes, build the text bank (name, attribute, analogous and
   template-ensemble texts), the CODER axes and the zero-shot classifier W;
2. read the train and validation labels and draw every (seed, K) split;
3. embed the support images (mean over augmented views, cached) and the validation and test
   splits (plain preprocessing, through the image-feature cache);
4. for every seed, K and method: fit the adapter (searching α, β on that split's validation
   images) and predict the test images with the tuned and the validation-free α, β;
5. read the test labels and score all predictions.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, DatasetError
from ..knowledge import Knowledge
from .adapters import ADAPTERS, CacheAdapter, CoderAdapter, zero_shot_classifier
from .cache_model import CoderSpace
from .defaults import DEFAULT_ALPHA, DEFAULT_BETA, DEFAULT_SEEDS, DEFAULT_SHOTS, VAL_PER_CLASS
from .sampling import FewShotSplit, plan_splits
from .search import SearchSpace
from .support import Augmentation, support_features

log = logging.getLogger(__name__)

REPORT_FORMAT = "coderclip-fewshot-report"
REPORT_VERSION = 1
METHOD_LABELS = {"zero-shot": "Zero-shot CLIP", "tip-adapter": "Tip-Adapter",
                 "coder-adapter": "CODER-Adapter"}
#: The two hyper-parameter settings reported for every adapter.
SETTINGS = {"tuned": "α, β tuned on validation", "fixed": "validation-free"}
#: Text types of the bank: CODER's axes (docs/method.md §6: P, Att, Ana) and W's templates.
BANK_TYPES = ("name", "attribute", "analogous", "ensemble")
CODER_AXES = ("name", "attribute", "analogous")


@dataclasses.dataclass
class FewShotPredictions:
    """Label-free outcome of the protocol on the test split.

    ``zero_shot`` ``[N]``; ``adapters[(method, setting, K, seed)]`` ``[N]`` test predictions;
    ``runs[(method, K, seed)]``: what each fit chose (α, β, validation accuracy, grids).
    """

    zero_shot: np.ndarray
    adapters: dict[tuple[str, str, int, int], np.ndarray]
    runs: dict[tuple[str, int, int], dict]


def check_splits(train, val, test) -> None:
    """The three splits must use the same classes in the same order."""
    for split in (val, test):
        if list(split.class_names) != list(train.class_names):
            raise DatasetError(
                f"the {split.split or 'other'} split of {split.name} lists its classes differently "
                f"from the train split ({len(split.class_names)} vs {len(train.class_names)} classes)")


def _rows(index: np.ndarray, position: dict[int, int]) -> tuple[list[int], list[int]]:
    """Rows of ``index`` (dataset indices) in an embedding table, skipping images that failed."""
    keep = [i for i, j in enumerate(index.tolist()) if j in position]
    return keep, [position[int(index[i])] for i in keep]


def predict_fewshot(support: torch.Tensor, support_labels: np.ndarray, support_pos: dict[int, int],
                    val: torch.Tensor, val_labels: np.ndarray, val_pos: dict[int, int],
                    test: torch.Tensor, splits: dict[tuple[int, int], FewShotSplit], tables,
                    methods: Sequence[str], search: SearchSpace | None = None,
                    fixed: tuple[float, float] = (DEFAULT_ALPHA, DEFAULT_BETA),
                    compress: bool = True, key_dtype: str = "auto") -> FewShotPredictions:
    """Fit every adapter of every split and predict ``test`` ``[N, D]``; no test labels involved.

    ``support`` / ``val``: embedding tables whose row for dataset index i is ``*_pos[i]``;
    ``*_labels``: labels of the whole train / val split (indexed by dataset index).
    """
    w = zero_shot_classifier(tables).to(test.device)
    space = CoderSpace(tables.general_emb.to(test.device), compress=compress)   # shared by all fits
    zero_shot = np.concatenate([(t @ w.T).argmax(1).cpu().numpy()   # [N], 4096 rows at a time
                                for t in test.split(4096)]) if len(test) else np.empty(0, np.int64)
    adapters: dict[tuple[str, str, int, int], np.ndarray] = {}
    runs: dict[tuple[str, int, int], dict] = {}
    for (seed, k), split in sorted(splits.items()):
        keep, rows = _rows(split.support, support_pos)
        xs, ys = support[rows], support_labels[split.support[keep]]
        vkeep, vrows = _rows(split.val, val_pos)
        xv, yv = val[vrows], val_labels[split.val[vkeep]]
        for method in methods:
            adapter = make_adapter(method, w, space, search=search, key_dtype=key_dtype)
            adapter.fit(xs, ys, xv, yv)
            tuned, free = adapter.predict_settings(test, [(adapter.alpha_, adapter.beta_), fixed])
            adapters[(method, "tuned", k, seed)] = tuned
            adapters[(method, "fixed", k, seed)] = free
            runs[(method, k, seed)] = {
                "method": method, "shots": k, "seed": seed, "alpha": adapter.alpha_,
                "beta": adapter.beta_, "val_top1": adapter.search_.val_accuracy,
                "zero_shot_val_top1": adapter.search_.zero_shot_val_accuracy,
                "support_images": int(len(rows)), "val_images": int(len(vrows)),
                "classes_with_fewer_shots": list(split.short_classes),
                "search": {"coarse": adapter.search_.coarse.to_dict(),
                           "refined": adapter.search_.refined.to_dict() if adapter.search_.refined else None}}
            log.info("%s, %d shots, seed %d: alpha=%.4g beta=%.4g (val %.2f%%)", method, k, seed,
                     adapter.alpha_, adapter.beta_, adapter.search_.val_accuracy)
    return FewShotPredictions(zero_shot=zero_shot, adapters=adapters, runs=runs)


def make_adapter(method: str, zero_shot_weights: torch.Tensor, coder_space: CoderSpace,
                 **kwargs) -> CacheAdapter:
    """A fresh adapter of ``method`` (``tip-adapter`` or ``coder-adapter``)."""
    if method not in ADAPTERS:
        raise ConfigError(f"unknown few-shot method {method!r}; expected one of {', '.join(ADAPTERS)}")
    if ADAPTERS[method] is CoderAdapter:
        return CoderAdapter(zero_shot_weights, coder_space, **kwargs)
    return ADAPTERS[method](zero_shot_weights, **kwargs)


def _accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    return float((pred == labels).mean() * 100.0) if len(labels) else float("nan")


def _stats(values: Sequence[float]) -> dict:
    v = np.asarray(values, dtype=np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else None,
            "per_seed": [float(x) for x in v]}


def score_fewshot(preds: FewShotPredictions, labels: np.ndarray, shots: Sequence[int],
                  seeds: Sequence[int], methods: Sequence[str]) -> dict:
    """Accuracies from final predictions and the test labels: per run, and mean ± std over seeds."""
    labels = np.asarray(labels)
    zero_shot = {"label": METHOD_LABELS["zero-shot"], "top1": _accuracy(preds.zero_shot, labels)}
    table = {}
    for method in methods:
        table[method] = {"label": METHOD_LABELS.get(method, method), "settings": {}}
        for setting in SETTINGS:
            by_k = {}
            for k in shots:
                acc = [_accuracy(preds.adapters[(method, setting, k, s)], labels) for s in seeds]
                by_k[str(k)] = _stats(acc)
            table[method]["settings"][setting] = by_k
    runs = []
    for (method, k, seed), run in sorted(preds.runs.items()):
        runs.append({**run, "top1": _accuracy(preds.adapters[(method, "tuned", k, seed)], labels),
                     "top1_fixed": _accuracy(preds.adapters[(method, "fixed", k, seed)], labels)})
    return {"zero_shot": zero_shot, "methods": table, "runs": runs}


def run_fewshot(encoder, knowledge: Knowledge, train, val, test, *,
                shots: Sequence[int] = DEFAULT_SHOTS, seeds: Sequence[int] = DEFAULT_SEEDS,
                methods: Sequence[str] = ("tip-adapter", "coder-adapter"),
                augmentation: Augmentation = Augmentation(), search: SearchSpace | None = None,
                fixed: tuple[float, float] = (DEFAULT_ALPHA, DEFAULT_BETA), compress: bool = True,
                key_dtype: str = "auto", batch_size: int = 64, num_workers: int | None = None,
                cache: bool = True, show_progress_bar: bool = False,
                knowledge_source: str | None = None) -> dict:
    """Run the few-shot protocol on three :class:`~coderclip.datasets.ImageDataset` splits and
    return the report (a JSON-ready dict; see docs/fewshot.md)."""
    from ..evaluation.guard import LabelGuard
    from ..evaluation.provenance import provenance
    from ..feature_cache import encode_dataset
    from ..scoring import CoderTables
    from ..bank.textbank import TextBank

    methods = list(dict.fromkeys(methods))
    for m in methods:
        if m not in ADAPTERS:
            raise ConfigError(f"unknown few-shot method {m!r}; expected one of {', '.join(ADAPTERS)}")
    shots = sorted({int(k) for k in shots})
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    check_splits(train, val, test)
    kn = knowledge.align(train.class_names)
    bank = TextBank.build(kn, encoder, types=BANK_TYPES, cache=cache, show_progress_bar=show_progress_bar)
    bank.check_encoder(encoder)
    tables = CoderTables.from_bank(bank, types=CODER_AXES, device=encoder.device)

    guard = LabelGuard(test)   # test labels: read only after every fit and prediction
    train_labels, val_labels = train.labels(), val.labels()
    splits = plan_splits(train_labels, val_labels, len(train.class_names), shots, seeds)
    support_idx = np.unique(np.concatenate([s.support for s in splits.values()]))

    log.info("support features: %d images x %d views", len(support_idx), augmentation.views)
    sup = support_features(encoder, [train.paths[i] for i in support_idx], augmentation,
                           batch_size=batch_size, num_workers=num_workers, cache=cache,
                           show_progress_bar=show_progress_bar)
    # whole splits, through the image-feature cache shared with zero-shot evaluation (a killed
    # run resumes from its finished shards). The test split is held whole ([N, D]) because every
    # (seed, shots, method) fit predicts all of it: streaming it would read it once per fit, or
    # hold every fitted adapter at once, which outweighs [N, D] at few-shot test-set sizes.
    ven = encode_dataset(encoder, val, batch_size=batch_size, num_workers=num_workers, cache=cache,
                         show_progress_bar=show_progress_bar).encoded
    ten = encode_dataset(encoder, test, batch_size=batch_size, num_workers=num_workers, cache=cache,
                         show_progress_bar=show_progress_bar).encoded
    if not ten.kept:
        raise DatasetError(f"none of the {len(test)} test images of {test.name} could be read")
    dev = encoder.device   # cached features come back on the CPU; the fits run on the model's device
    preds = predict_fewshot(
        sup.embeddings.to(dev), train_labels, {int(support_idx[j]): r for r, j in enumerate(sup.kept)},
        ven.embeddings.to(dev), val_labels, {int(j): r for r, j in enumerate(ven.kept)},
        ten.embeddings.to(dev), splits, tables, methods, search=search, fixed=fixed, compress=compress,
        key_dtype=key_dtype)

    guard.final()
    test_labels = test.labels()[np.asarray(ten.kept, dtype=np.int64)]   # read only now
    space = search or SearchSpace()
    report = {
        "format": REPORT_FORMAT, "version": REPORT_VERSION,
        "dataset": {"name": train.name, "classes": len(train.class_names),
                    "splits": {"train": train.describe(), "val": val.describe(), "test": test.describe()}},
        "protocol": {
            "shots": shots, "seeds": seeds, "methods": methods,
            "val_per_class": f"min(K, {VAL_PER_CLASS})", "nested_support": True,
            "augmentation": dataclasses.asdict(augmentation),
            "search": {"alphas": list(space.alphas), "betas": list(space.betas), "refine": space.refine},
            "validation_free": {"alpha": fixed[0], "beta": fixed[1]},
            "zero_shot_classifier": "template ensemble" if tables.ensemble_emb is not None else "name prompt",
            "coder_axes": {"types": list(CODER_AXES), "texts": int(tables.general_emb.shape[0]),
                           "compressed": bool(compress)},
            "std": "sample standard deviation over seeds (ddof=1)",
        },
        "n_test_images": int(len(test_labels)),
        "skipped_images": [{"path": p, "reason": r}
                           for p, r in (*sup.failures, *ven.failures, *ten.failures)],
    }
    report.update(score_fewshot(preds, test_labels, shots, seeds, methods))
    honest = guard.honest()
    report["provenance"] = provenance(encoder, kn, bank, knowledge_source,
                                      extra={"seed": seeds, "test_labels_read_after_hyperparameters": honest},
                                      labels_read_after_predictions=honest)
    return report


def folder_splits(root: str | Path, domain: str = "generic", class_names: Sequence[str] | None = None):
    """train / val / test :class:`~coderclip.datasets.ImageDataset` from ``root/{train,val,test}/<class>/``;
    the class order is the train folder's (or ``class_names``)."""
    from ..datasets import from_folder

    root = Path(root)
    missing = [s for s in ("train", "val", "test") if not (root / s).is_dir()]
    if missing:
        raise DatasetError(f"{root}: expected sub-folders train/, val/ and test/ (each with one "
                           f"folder per class); missing: {', '.join(missing)}")
    train = from_folder(root / "train", name=root.name, domain=domain, class_names=class_names)
    out = [train]
    for s in ("val", "test"):
        out.append(from_folder(root / s, name=root.name, domain=domain, class_names=train.class_names))
    for ds, s in zip(out, ("train", "val", "test")):
        ds.split = s
    return tuple(out)


def loader_splits(name: str, root: str | Path):
    """train / val / test splits from a registered benchmark loader (``coderclip.datasets.LOADERS``)."""
    from .. import datasets

    loader = datasets.LOADERS.get(name)
    if loader is None:
        known = ", ".join(sorted(datasets.LOADERS)) or "none registered"
        raise ConfigError(f"unknown dataset {name!r} (known: {known}); or pass an image folder "
                          "with train/, val/ and test/ sub-folders")
    return tuple(loader(root, split=s) for s in ("train", "val", "test"))
