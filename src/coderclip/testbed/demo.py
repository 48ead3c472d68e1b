"""The offline demo: the shipped testbed model classifies the testbed's fixed test set with CLIP
(name prompt), CLIP (template ensemble), CODER and CODER + rerank, plus the ablation ladder
P -> +Att -> +Ana -> +Syn -> +rerank; writes a JSON report and a PNG chart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ..defaults import DEFAULT_TAU, DEFAULT_TOP_K
from . import classes as tc
from .model import DEFAULT_WEIGHTS

PACK = "testbed"
#: Where the shipped weights' recorded accuracies live (written by :func:`record_accuracies`).
RECORD = DEFAULT_WEIGHTS.with_suffix(".json")


def run_demo(out_dir: str | os.PathLike | None = "coderclip-demo", weights: str | os.PathLike | None = None,
             per_class: int = tc.TEST_IMAGES_PER_CLASS, device: str | None = None,
             tau: float = DEFAULT_TAU, top_k: int = DEFAULT_TOP_K, cache: bool = True,
             workers: int | None = None, log: Callable[[str], None] | None = None,
             seed: int = tc.TEST_SEED) -> dict:
    """Evaluate every method on the testbed test set; returns the report (also written to
    ``out_dir/report.json`` with ``out_dir/chart.png`` unless ``out_dir`` is ``None``).

    ``seed`` selects another image set drawn from the same class recipes (e.g. a validation set);
    the recorded accuracies are for the default, :data:`~coderclip.testbed.classes.TEST_SEED`.
    """
    import torch

    from ..bank.textbank import TEXT_TYPES, TextBank
    from ..datasets import Labels
    from ..evaluation.guard import LabelGuard
    from ..evaluation.provenance import provenance
    from ..evaluation.run import REPORT_FORMAT, REPORT_VERSION, predict_then_label
    from ..knowledge import load_knowledge
    from .model import load_testbed_encoder, pixels_from_uint8

    log = log or (lambda msg: None)
    t0 = time.time()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.time()
        timings[name] = round(now - since, 2)
        return now

    encoder = load_testbed_encoder(weights, device=device, precision="fp32" if device in (None, "cpu") else None)
    knowledge = load_knowledge(PACK).align(tc.CLASS_NAMES)
    t = lap("load_model", t0)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    log(f"rendering the test set: {len(tc.CLASSES)} classes x {per_class} images (seed {seed})")
    images, raw_labels = tc.make_test_set(per_class, seed=seed, workers=workers)
    labels = Labels(raw_labels)
    guard = LabelGuard(labels)
    t = lap("render_test_set", t)
    log("building the text bank")
    bank = TextBank.build(knowledge, encoder, types=TEXT_TYPES, cache=cache)
    t = lap("text_bank", t)
    log(f"encoding {len(images)} images")
    x = encoder.encode_images(pixels_from_uint8(images), batch_size=256)
    t = lap("encode_images", t)
    report = {"format": REPORT_FORMAT, "version": REPORT_VERSION,
              "dataset": {"name": "testbed", "classes": len(tc.CLASSES), "images": int(len(labels)),
                          "images_per_class": per_class, "seed": seed,
                          "description": "rendered scenes of everyday concepts (docs/testbed.md)"},
              "skipped_images": []}
    with torch.inference_mode():
        report.update(predict_then_label(x, bank, knowledge.class_names, labels.labels, tau=tau,
                                         top_k=top_k, guard=guard))
    lap("score", t)
    timings["total"] = round(time.time() - t0, 2)
    report["provenance"] = provenance(encoder, knowledge, bank, knowledge_source=PACK,
                                      extra={"seconds": timings},
                                      labels_read_after_predictions=guard.honest())
    report["provenance"]["seed"] = seed
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        from .._io import atomic_write_text

        atomic_write_text(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        plot_report(report, out / "chart.png")
    return report


def headline(report: dict) -> dict[str, float]:
    """The accuracies the demo prints first and the shipped record keeps (top-1, %)."""
    out = {m: round(v["top1"], 2) for m, v in report["methods"].items()}
    out.update({f"ablation:{k}": round(v, 2) for k, v in report["ablation"].items()})
    return out


def plot_report(report: dict, path: str | os.PathLike) -> Path:
    """A PNG with the methods, the ablation ladder, accuracy versus tau and per-class accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = report["methods"]
    per_class = report["per_class"]
    fig = plt.figure(figsize=(13, 9), constrained_layout=True)
    grid = fig.add_gridspec(2, 2, width_ratios=[1, 1.25])

    ax = fig.add_subplot(grid[0, 0])
    labels = [m["label"] for m in methods.values()]
    vals = [m["top1"] for m in methods.values()]
    bars = ax.barh(labels[::-1], vals[::-1], color=["#4c72b0", "#55a868", "#8172b2", "#c44e52"][:len(vals)][::-1])
    ax.bar_label(bars, fmt="%.1f", padding=3)
    ax.set_xlabel("top-1 accuracy (%)")
    ax.set_xlim(0, 100)
    ax.set_title(f"testbed: {report['n_images']} images, {len(per_class)} classes")

    ax = fig.add_subplot(grid[1, 0])
    ladder = report["ablation"]
    bars = ax.bar(list(ladder), list(ladder.values()), color="#8172b2")
    ax.bar_label(bars, fmt="%.1f", padding=2)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("ablation: P -> +Att -> +Ana -> +Syn -> +rerank")
    ax.tick_params(axis="x", labelrotation=20)
    sweep = report["rerank"]["tau_sweep"]
    ax2 = ax.inset_axes([0.08, 0.62, 0.36, 0.3])
    ax2.plot([s["tau"] for s in sweep], [s["top1"] for s in sweep], marker=".", color="#c44e52")
    ax2.axvline(report["rerank"]["tau"], color="grey", lw=0.8, ls="--")
    ax2.set_title("rerank accuracy vs tau", fontsize=8)
    ax2.tick_params(labelsize=7)

    ax = fig.add_subplot(grid[:, 1])
    names = [p["class"] for p in per_class]
    y = np.arange(len(names))
    base = [p.get("clip", 0.0) for p in per_class]
    best = [p.get("coder-rerank", p.get("coder", 0.0)) for p in per_class]
    ax.barh(y + 0.2, base, height=0.4, label=methods.get("clip", {}).get("label", "CLIP"), color="#4c72b0")
    ax.barh(y - 0.2, best, height=0.4, label=methods.get("coder-rerank", {}).get("label", "CODER"),
            color="#c44e52")
    ax.set_yticks(y, names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("per-class top-1 accuracy (%)")
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def record_accuracies(report: dict, path: str | os.PathLike = RECORD) -> None:
    """Store the demo's headline accuracies next to the shipped weights (done once after training)."""
    from .._io import atomic_write_text

    p = Path(path)
    data = json.loads(p.read_text()) if p.is_file() else {}
    data["test_accuracy"] = {
        "images": report["n_images"], "test_seed": tc.TEST_SEED,
        "tau": report["rerank"]["tau"], "top_k": report["rerank"]["top_k"],
        "top1": headline(report),
        "recorded_with": "coderclip demo (coderclip.testbed.demo.run_demo), CPU, fp32",
    }
    atomic_write_text(p, json.dumps(data, indent=1) + "\n")


def recorded_accuracies(path: str | os.PathLike = RECORD) -> dict[str, float] | None:
    p = Path(path)
    if not p.is_file():
        return None
    return json.loads(p.read_text()).get("test_accuracy", {}).get("top1")
