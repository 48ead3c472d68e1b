"""The offline demo: the shipped testbed model classifies fresh test sets rendered with a fixed
list of seeds (:data:`~coderclip.testbed.classes.TEST_SEEDS`) with every method — CLIP (name prompt),
CLIP (template ensemble), the description baselines, CODER and CODER + rerank — plus the ablation
ladder, and reports each as mean ± std over the seeds with the per-seed table. τ and K are chosen on
labelled validation images (their own seed and stream) unless given. Writes a JSON report and a PNG
chart."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from . import classes as tc
from .model import DEFAULT_WEIGHTS

PACK = "testbed"
#: Where the shipped weights' recorded accuracies live (written by :func:`record_accuracies`).
RECORD = DEFAULT_WEIGHTS.with_suffix(".json")
#: Validation images per class on which the demo chooses τ and K.
VAL_IMAGES_PER_CLASS = 20


def encode_set(encoder, seed: int, per_class: int, stream: int = tc.STREAM_TEST, workers: int = 1):
    """Unit image embeddings ``[N, D]`` and labels ``[N]`` of the testbed images of one seed."""
    from .model import pixels_from_uint8

    images, labels = tc.make_test_set(per_class, seed=seed, workers=workers, stream=stream)
    return encoder.encode_images(pixels_from_uint8(images), batch_size=256), labels


def choose_tau_k(x, labels: np.ndarray | None, bank, tau: float | None, top_k: int | None) -> dict:
    """The protocol: τ and K chosen on validation embeddings ``x`` where not given."""
    import torch

    from ..defaults import DEFAULT_TAU, DEFAULT_TOP_K
    from ..evaluation.predict import DEFAULT_KS, DEFAULT_TAUS
    from ..evaluation.selection import select_on_val

    protocol = {"tau": tau, "tau_source": "fixed", "top_k": top_k, "top_k_source": "fixed", "selection": None}
    if tau is None or top_k is None:
        with torch.inference_mode():
            sel = select_on_val(x, bank, lambda: labels, tau=DEFAULT_TAU if tau is None else tau,
                                top_k=DEFAULT_TOP_K if top_k is None else top_k, taus=DEFAULT_TAUS,
                                ks=DEFAULT_KS, tune_tau=tau is None, tune_k=top_k is None)
        sel.update(split="val", seed=tc.VAL_SEED, stream=tc.STREAM_VAL)
        protocol["selection"] = sel
        if tau is None:
            protocol.update(tau=sel["tau"], tau_source="val")
        if top_k is None:
            protocol.update(top_k=sel["top_k"], top_k_source="val")
    return protocol


def run_demo(out_dir: str | os.PathLike | None = "coderclip-demo", weights: str | os.PathLike | None = None,
             per_class: int = tc.TEST_IMAGES_PER_CLASS, device: str | None = None,
             tau: float | None = None, top_k: int | None = None, cache: bool = True,
             workers: int | None = None, log: Callable[[str], None] | None = None,
             seeds: Sequence[int] = tc.TEST_SEEDS, val_per_class: int = VAL_IMAGES_PER_CLASS,
             knowledge=None, encoder=None, features: dict | None = None) -> dict:
    """Evaluate every method on a fresh test set per seed; returns the report (also written to
    ``out_dir/report.json`` with ``out_dir/chart.png`` unless ``out_dir`` is ``None``).

    ``tau`` / ``top_k``: ``None`` chooses them on ``val_per_class`` validation images per class
    (:data:`~coderclip.testbed.classes.VAL_SEED`, validation stream). ``knowledge``: a
    :class:`~coderclip.knowledge.Knowledge` to use instead of the shipped pack. ``features``: a
    dict that caches image embeddings and labels by test seed (and ``"val"``) between calls with
    the same encoder and ``per_class``; it is filled in place.
    """
    import torch

    from ..bank.textbank import TEXT_TYPES, TextBank
    from ..datasets import Labels
    from ..evaluation.guard import LabelGuard
    from ..evaluation.provenance import provenance
    from ..evaluation.run import REPORT_FORMAT, REPORT_VERSION, predict_then_label
    from ..knowledge import load_knowledge
    from .model import load_testbed_encoder

    if not seeds:
        raise ValueError("give at least one test seed")
    log = log or (lambda msg: None)
    t0 = time.time()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.time()
        timings[name] = round(timings.get(name, 0.0) + now - since, 2)
        return now

    if encoder is None:
        encoder = load_testbed_encoder(weights, device=device,
                                       precision="fp32" if device in (None, "cpu") else None)
    knowledge_source = PACK if knowledge is None else None
    knowledge = (knowledge or load_knowledge(PACK)).align(tc.CLASS_NAMES)
    t = lap("load_model", t0)
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    log("building the text bank")
    bank = TextBank.build(knowledge, encoder, types=TEXT_TYPES, cache=cache)
    t = lap("text_bank", t)
    feats = features if features is not None else {}
    need_val = tau is None or top_k is None
    if need_val and "val" not in feats:
        log(f"validation images: seed {tc.VAL_SEED}, {val_per_class} per class")
        feats["val"] = encode_set(encoder, tc.VAL_SEED, val_per_class, tc.STREAM_VAL, workers)
    for seed in seeds:
        if seed not in feats:
            log(f"test seed {seed}: rendering and encoding {len(tc.CLASSES)} x {per_class} images")
            feats[seed] = encode_set(encoder, seed, per_class, tc.STREAM_TEST, workers)
    t = lap("render_and_encode", t)
    protocol = choose_tau_k(*feats["val"], bank, tau, top_k) if need_val else choose_tau_k(None, None, bank, tau, top_k)
    per_seed, honest = [], []
    for seed in seeds:
        x, raw_labels = feats[seed]
        labels = Labels(raw_labels)
        guard = LabelGuard(labels)
        with torch.inference_mode():
            r = predict_then_label(x, bank, knowledge.class_names, labels.labels, tau=protocol["tau"],
                                   top_k=protocol["top_k"], guard=guard)
        honest.append(guard.honest())
        per_seed.append({"seed": int(seed), **r})
    t = lap("score", t)
    report = {"format": REPORT_FORMAT, "version": REPORT_VERSION,
              "dataset": {"name": "testbed", "classes": len(tc.CLASSES),
                          "images": int(sum(r["n_images"] for r in per_seed)),
                          "images_per_class": per_class, "seeds": [int(s) for s in seeds],
                          "description": "rendered scenes of everyday concepts (docs/testbed.md); "
                                         "one fresh test set per seed"},
              "protocol": protocol, "skipped_images": []}
    report.update(aggregate(per_seed))
    timings["total"] = round(time.time() - t0, 2)
    report["provenance"] = provenance(encoder, knowledge, bank, knowledge_source=knowledge_source,
                                      extra={"seconds": timings},
                                      labels_read_after_predictions=all(honest))
    report["provenance"]["seeds"] = [int(s) for s in seeds]
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        from .._io import atomic_write_text

        atomic_write_text(out / "report.json", json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        plot_report(report, out / "chart.png")
    return report


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def aggregate(per_seed: list[dict]) -> dict:
    """Mean ± std over seeds (sample std) of every method and ablation step, the per-seed table,
    per-class accuracy averaged over seeds, rerank counts summed and the post-hoc τ/K sweeps averaged."""
    first = per_seed[0]
    methods = {}
    for m, v in first["methods"].items():
        top1, top1_std = _mean_std([r["methods"][m]["top1"] for r in per_seed])
        top5, top5_std = _mean_std([r["methods"][m]["top5"] for r in per_seed])
        methods[m] = {"label": v["label"], "top1": top1, "top1_std": top1_std, "top5": top5, "top5_std": top5_std}
    ablation, ablation_std = {}, {}
    for k in first["ablation"]:
        ablation[k], ablation_std[k] = _mean_std([r["ablation"][k] for r in per_seed])
    gain = [r["methods"]["coder-rerank"]["top1"] - r["methods"]["coder"]["top1"] for r in per_seed]
    rr0 = first["rerank"]
    rerank = {"tau": rr0["tau"], "top_k": rr0["top_k"],
              **{k: int(sum(r["rerank"][k] for r in per_seed))
                 for k in ("reranked", "changed", "wrong_to_right", "right_to_wrong", "wrong_to_wrong")},
              "gain": _mean_std(gain)[0], "gain_std": _mean_std(gain)[1],
              "tau_sweep": [{"tau": s["tau"], "top1": float(np.mean([r["rerank"]["tau_sweep"][i]["top1"]
                                                                     for r in per_seed]))}
                            for i, s in enumerate(rr0["tau_sweep"])],
              "k_sweep": [{"top_k": s["top_k"], "top1": float(np.mean([r["rerank"]["k_sweep"][i]["top1"]
                                                                       for r in per_seed]))}
                          for i, s in enumerate(rr0["k_sweep"])],
              "sweeps": "post-hoc: mean over the test seeds at other τ and K, never used to choose them"}
    per_class = [{"class": pc["class"], "images": int(sum(r["per_class"][i]["images"] for r in per_seed)),
                  **{m: float(np.mean([r["per_class"][i][m] for r in per_seed])) for m in methods}}
                 for i, pc in enumerate(first["per_class"])]
    pairs: dict[tuple[str, str], int] = {}
    for r in per_seed:
        for c in r["confused_pairs"]:
            pairs[(c["true"], c["predicted"])] = pairs.get((c["true"], c["predicted"]), 0) + c["count"]
    confused = [{"true": a, "predicted": b, "count": n}
                for (a, b), n in sorted(pairs.items(), key=lambda kv: -kv[1])[:10]]
    table = [{"seed": r["seed"], "images": r["n_images"],
              "top1": {m: v["top1"] for m, v in r["methods"].items()},
              "top5": {m: v["top5"] for m, v in r["methods"].items()},
              "ablation": dict(r["ablation"]),
              "rerank": {k: r["rerank"][k] for k in ("reranked", "changed", "wrong_to_right", "right_to_wrong")}}
             for r in per_seed]
    return {"n_images": int(sum(r["n_images"] for r in per_seed)), "methods": methods, "ablation": ablation,
            "ablation_std": ablation_std, "rerank": rerank, "per_class": per_class,
            "confused_pairs": confused, "per_seed": table}


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
    errs = [m.get("top1_std", 0.0) for m in methods.values()]
    palette = ["#4c72b0", "#55a868", "#dd8452", "#937860", "#da8bc3", "#8172b2", "#c44e52"]
    colors = (palette[:len(vals) - 2] + palette[-2:]) if len(vals) <= len(palette) else None
    bars = ax.barh(labels[::-1], vals[::-1], xerr=errs[::-1], capsize=3,
                   color=colors[::-1] if colors else "#8172b2")
    ax.bar_label(bars, labels=[f"{v:.1f} ± {e:.1f}" for v, e in zip(vals[::-1], errs[::-1])], padding=8)
    ax.set_xlabel("top-1 accuracy (%), mean ± std over test seeds")
    ax.set_xlim(0, 100)
    seeds = report.get("dataset", {}).get("seeds", [])
    ax.set_title(f"testbed: {len(per_class)} classes, {len(seeds)} test seeds, {report['n_images']} images")

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
    ax2.axvline(report["rerank"]["tau"], color="grey", lw=0.8, ls="--")  # the τ used (chosen on val)
    ax2.set_title("rerank accuracy vs tau (post-hoc)", fontsize=8)
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
    """Store the demo's headline accuracies (means over the test seeds), their std and the per-seed
    table next to the shipped weights (done once after training)."""
    from .._io import atomic_write_text

    p = Path(path)
    data = json.loads(p.read_text()) if p.is_file() else {}
    data["test_accuracy"] = {
        "images": report["n_images"], "test_seeds": report["dataset"]["seeds"],
        "images_per_class": report["dataset"]["images_per_class"],
        "tau": report["rerank"]["tau"], "top_k": report["rerank"]["top_k"],
        "tau_source": report["protocol"]["tau_source"], "top_k_source": report["protocol"]["top_k_source"],
        "top1": headline(report),
        "top1_std": {m: round(v["top1_std"], 2) for m, v in report["methods"].items()},
        "rerank_gain": [round(report["rerank"]["gain"], 2), round(report["rerank"]["gain_std"], 2)],
        "per_seed": [{"seed": r["seed"], "top1": {m: round(v, 2) for m, v in r["top1"].items()}}
                     for r in report["per_seed"]],
        "recorded_with": "coderclip demo (coderclip.testbed.demo.run_demo), CPU, fp32",
    }
    atomic_write_text(p, json.dumps(data, indent=1) + "\n")


def recorded_accuracies(path: str | os.PathLike = RECORD) -> dict[str, float] | None:
    p = Path(path)
    if not p.is_file():
        return None
    return json.loads(p.read_text()).get("test_accuracy", {}).get("top1")


def markdown_tables(report: dict) -> dict[str, str]:
    """The demo's tables in Markdown (methods with mean ± std, ablation, per seed, per class), as
    quoted in README.md and docs/testbed.md."""
    methods = report["methods"]
    rows = ["| method | top-1 % | top-5 % |", "|---|---:|---:|"]
    rows += [f"| {v['label']} | {v['top1']:.2f} ± {v['top1_std']:.2f} | {v['top5']:.2f} ± {v['top5_std']:.2f} |"
             for v in methods.values()]
    abl = report["ablation"]
    ladder = ["| ablation | " + " | ".join(abl) + " |", "|---|" + "---:|" * len(abl),
              "| top-1 % | " + " | ".join(f"{v:.2f} ± {report['ablation_std'][k]:.2f}" for k, v in abl.items()) + " |"]
    seeds = ["| seed | " + " | ".join(v["label"] for v in methods.values()) + " |", "|---|" + "---:|" * len(methods)]
    seeds += [f"| {r['seed']} | " + " | ".join(f"{r['top1'][m]:.2f}" for m in methods) + " |"
              for r in report["per_seed"]]
    pc = ["| class | CLIP | CuPL-style | CODER | CODER + rerank |", "|---|---:|---:|---:|---:|"]
    pc += [f"| {p['class']} | {p['clip']:.0f} | {p['cupl']:.0f} | {p['coder']:.0f} | {p['coder-rerank']:.0f} |"
           for p in report["per_class"]]
    return {"methods": "\n".join(rows), "ablation": "\n".join(ladder), "per_seed": "\n".join(seeds),
            "per_class": "\n".join(pc)}
