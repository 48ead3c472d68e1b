"""PNG charts of a benchmark report (matplotlib, drawn off-screen with the Agg canvas).

``accuracy.png``: top-1 per dataset and method, one panel per model. ``ablation.png``: the
ablation ladder. ``tau_sweep.png``: CODER + rerank top-1 against τ and against K.
``confused-<dataset>-<model>.png``: the most frequent (true, predicted) confusions of one run.
"""

from __future__ import annotations

from pathlib import Path

from .._io import atomic_write_bytes, slug
from .tables import method_labels

_COLORS = ["#4c72b0", "#8fa8d6", "#dd8452", "#c44e52", "#55a868", "#8172b3", "#937860", "#da8bc3"]


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
    return path


def _run_label(run: dict, with_model: bool) -> str:
    return f"{run['dataset']['name']} / {run['model']}" if with_model else run["dataset"]["name"]


def accuracy_chart(report: dict, path: Path) -> Path:
    runs = report["runs"]
    models = list(dict.fromkeys(r["model"] for r in runs))
    datasets = list(dict.fromkeys(r["dataset"]["name"] for r in runs))
    labels = method_labels(runs)
    methods = list(labels)
    fig = _figure(max(6.0, 1.2 + 0.9 * len(datasets) * max(1, len(methods)) / 2), 2.0 + 3.0 * len(models))
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    width = 0.8 / max(1, len(methods))
    for ax, model in zip(axes, models):
        by_ds = {r["dataset"]["name"]: r for r in runs if r["model"] == model}
        for j, m in enumerate(methods):
            xs = [i + (j - (len(methods) - 1) / 2) * width for i in range(len(datasets))]
            ys = [by_ds[d]["methods"].get(m, {}).get("top1", 0.0) if d in by_ds else 0.0 for d in datasets]
            bars = ax.bar(xs, ys, width, label=labels[m], color=_COLORS[j % len(_COLORS)])
            ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=1)
        ax.set_xticks(range(len(datasets)), datasets)
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_ylim(0, 105)
        ax.set_title(model, fontsize=10)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="outside lower center", ncols=min(4, len(methods)), fontsize=8)
    return _save(fig, path)


def ablation_chart(report: dict, path: Path) -> Path:
    runs = report["runs"]
    with_model = len({r["model"] for r in runs}) > 1
    steps = list(dict.fromkeys(s for r in runs for s in r["ablation"]))
    fig = _figure(7.0, 4.0)
    ax = fig.subplots()
    for i, r in enumerate(runs):
        ys = [r["ablation"].get(s) for s in steps]
        xs = [k for k, y in enumerate(ys) if y is not None]
        ax.plot(xs, [ys[k] for k in xs], marker="o", color=_COLORS[i % len(_COLORS)],
                label=_run_label(r, with_model))
    ax.set_xticks(range(len(steps)), steps)
    ax.set_ylabel("top-1 accuracy (%)")
    _min_span(ax, 2.0)
    ax.set_title("Ablation ladder: texts added to the heuristic classifier, then the rerank", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def sweep_chart(report: dict, path: Path) -> Path:
    runs = report["runs"]
    with_model = len({r["model"] for r in runs}) > 1
    fig = _figure(10.0, 4.0)
    ax_tau, ax_k = fig.subplots(1, 2)
    for i, r in enumerate(runs):
        color = _COLORS[i % len(_COLORS)]
        sweep = r["rerank"]["tau_sweep"]
        ax_tau.plot([s["tau"] for s in sweep], [s["top1"] for s in sweep], marker=".", color=color,
                    label=_run_label(r, with_model))
        ax_tau.axvline(r["protocol"]["tau"], color=color, linestyle=":", linewidth=1)
        ax_tau.axhline(r["methods"]["coder"]["top1"], color=color, linestyle="--", linewidth=0.8)
        ks = r["rerank"]["k_sweep"]
        ax_k.plot([s["top_k"] for s in ks], [s["top1"] for s in ks], marker="o", color=color,
                  label=_run_label(r, with_model))
    ax_tau.set_xlabel("τ (rerank samples with p(top1) − p(top2) < τ)")
    ax_tau.set_ylabel("CODER + rerank top-1 (%)")
    ax_tau.set_title("accuracy vs τ (dotted: τ used; dashed: no rerank)", fontsize=10)
    ax_k.set_xlabel("K (candidates reranked)")
    ax_k.set_title("accuracy vs K at the τ used", fontsize=10)
    for ax in (ax_tau, ax_k):
        _min_span(ax, 2.0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _save(fig, path)


def _min_span(ax, span: float) -> None:
    """Keep at least ``span`` accuracy points on the y axis, so flat curves do not look noisy."""
    lo, hi = ax.get_ylim()
    if hi - lo < span:
        low = min(max(0.0, (lo + hi - span) / 2), 100.0 - span)
        ax.set_ylim(low, low + span)


def confusion_chart(run: dict, path: Path, n: int = 10) -> Path:
    """The ``n`` most confused (true → predicted) pairs of a run as bars; reads only the
    report's short ``confused_pairs`` list, so its cost does not depend on the number of classes."""
    pairs = run["confused_pairs"][:n]
    fig = _figure(7.0, 1.2 + 0.35 * max(1, len(pairs)))
    ax = fig.subplots()
    if pairs:
        labels = [f"{p['true']} → {p['predicted']}" for p in pairs][::-1]
        ax.barh(range(len(pairs)), [p["count"] for p in pairs][::-1], color=_COLORS[3])
        ax.set_yticks(range(len(pairs)), labels, fontsize=8)
        ax.set_xlabel("images (true → predicted)")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.text(0.5, 0.5, "no misclassified images", ha="center", va="center")
        ax.set_axis_off()
    model = run.get("model") or (run.get("provenance", {}).get("model") or {}).get("name", "")
    ax.set_title(f"Most confused pairs: {run['dataset']['name']} / {model}", fontsize=10)
    return _save(fig, path)


def write_charts(report: dict, folder: str | Path) -> dict[str, Path]:
    """Draw every chart of ``report`` into ``folder``; returns name -> file."""
    folder = Path(folder)
    out = {"accuracy": accuracy_chart(report, folder / "accuracy.png"),
           "ablation": ablation_chart(report, folder / "ablation.png"),
           "tau_sweep": sweep_chart(report, folder / "tau_sweep.png")}
    for r in report["runs"]:
        name = f"confused-{slug(r['dataset']['name'])}-{slug(r['model'])}"
        out[name] = confusion_chart(r, folder / f"{name}.png")
    return out
