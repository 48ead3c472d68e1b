"""Few-shot reports: a Markdown (or terminal) table of accuracy versus shots, mean ± std over
seeds, and a PNG chart with error bars."""

from __future__ import annotations

import json
import os
from pathlib import Path

from .._io import atomic_write_bytes, atomic_write_text
from ..reports.tables import _table
from .protocol import SETTINGS


def _cell(stat: dict) -> str:
    if stat["std"] is None:
        return f"{stat['mean']:.2f}"
    return f"{stat['mean']:.2f} ± {stat['std']:.2f}"


def _row_label(report: dict, method: dict, setting: str) -> str:
    if setting == "fixed":
        vf = report["protocol"]["validation_free"]
        return f"{method['label']} (α={vf['alpha']:g}, β={vf['beta']:g}, no validation)"
    return f"{method['label']} (α, β tuned on val)"


def accuracy_table(report: dict, markdown: bool = True) -> str:
    """Rows: zero-shot and each adapter in both settings; columns: shots."""
    shots = report["protocol"]["shots"]
    header = ["method", *(f"{k}-shot" for k in shots)]
    zs = f"{report['zero_shot']['top1']:.2f}"
    rows = [[report["zero_shot"]["label"], *([zs] * len(shots))]]
    for method in report["methods"].values():
        for setting in SETTINGS:
            by_k = method["settings"][setting]
            rows.append([_row_label(report, method, setting), *(_cell(by_k[str(k)]) for k in shots)])
    return _table(header, rows, markdown)


def hyperparameter_table(report: dict, markdown: bool = True) -> str:
    """The α, β chosen on validation for every run, with validation accuracies."""
    rows = [[r["method"], str(r["shots"]), str(r["seed"]), f"{r['alpha']:.4g}", f"{r['beta']:.4g}",
             f"{r['val_top1']:.2f}", f"{r['zero_shot_val_top1']:.2f}", str(r["val_images"]),
             f"{r['top1']:.2f}"] for r in report["runs"]]
    return _table(["method", "shots", "seed", "α", "β", "val top-1 %", "val zero-shot %",
                   "val images", "test top-1 %"], rows, markdown)


def format_summary(report: dict, markdown: bool = False) -> str:
    """The accuracy table with a one-line header (terminal text or Markdown)."""
    ds = report["dataset"]
    p = report["protocol"]
    head = (f"{ds['name']}: {ds['classes']} classes, {report['n_test_images']} test images; "
            f"top-1 % on test, mean ± std over seeds {', '.join(map(str, p['seeds']))}")
    return "\n".join([head, "", accuracy_table(report, markdown)])


def format_markdown(report: dict, chart: str | None = None) -> str:
    """The whole report as a Markdown page."""
    p, prov = report["protocol"], report.get("provenance", {})
    model = (prov.get("model") or {}).get("name", "?")
    kn = prov.get("knowledge") or {}
    aug = p["augmentation"]
    out = [f"# Few-shot classification: {report['dataset']['name']}", "",
           f"Model `{model}`, knowledge `{kn.get('name') or kn.get('source') or '?'}`, "
           f"{report['dataset']['classes']} classes, {report['n_test_images']} test images. "
           f"Top-1 accuracy (%) on the test split, mean ± {p['std']}.", "",
           accuracy_table(report, markdown=True), ""]
    if chart:
        out += [f"![accuracy versus shots]({chart})", ""]
    out += ["## Protocol", "",
            f"- K shots per class from the train split (seeded; the sets of one seed are nested), "
            f"validation images per class: {p['val_per_class']}, seeds "
            f"{', '.join(map(str, p['seeds']))}.",
            f"- Support features: mean of {aug['views']} augmented views (random resized crop, "
            f"scale {aug['scale'][0]:g}–{aug['scale'][1]:g}, horizontal flip), normalised.",
            f"- Zero-shot classifier W: {p['zero_shot_classifier']}. CODER axes: "
            f"{p['coder_axes']['texts']} texts of types {', '.join(p['coder_axes']['types'])}.",
            f"- α, β: coarse grid ({len(p['search']['alphas'])} × {len(p['search']['betas'])}) on the "
            f"validation images, then a {p['search']['refine']} × {p['search']['refine']} grid around "
            f"its best point. The test labels were read once, after every prediction was made.",
            "", "## Chosen hyper-parameters", "", hyperparameter_table(report, markdown=True), ""]
    if report.get("skipped_images"):
        out += [f"{len(report['skipped_images'])} unreadable image(s) were skipped (listed in the "
                "JSON report).", ""]
    return "\n".join(out)


def plot_accuracy(report: dict, path: str | os.PathLike) -> Path:
    """PNG chart of test accuracy versus shots for each method, with ±std error bars (written
    through matplotlib's Agg canvas)."""
    import io

    from matplotlib.figure import Figure   # no pyplot: headless, and the user's backend is left alone

    shots = report["protocol"]["shots"]
    fig = Figure(figsize=(6.4, 4.4), dpi=120)
    ax = fig.add_subplot()
    ax.axhline(report["zero_shot"]["top1"], color="0.4", linestyle=":", label=report["zero_shot"]["label"])
    colours = {"tip-adapter": "tab:blue", "coder-adapter": "tab:red"}
    for i, (name, method) in enumerate(report["methods"].items()):
        for setting, style, face in (("tuned", "-", None), ("fixed", "--", "white")):
            by_k = method["settings"][setting]
            mean = [by_k[str(k)]["mean"] for k in shots]
            std = [by_k[str(k)]["std"] or 0.0 for k in shots]
            colour = colours.get(name, f"C{i + 2}")
            how = "tuned on val" if setting == "tuned" else "validation-free"
            ax.errorbar(shots, mean, yerr=std, capsize=3, marker="o", linestyle=style, color=colour,
                        markerfacecolor=face or colour, label=f"{method['label']} ({how})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.set_xlabel("shots per class")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_title(f"{report['dataset']['name']}: few-shot accuracy (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def write_report(report: dict, folder: str | os.PathLike, stem: str = "fewshot") -> dict[str, Path]:
    """Write ``<stem>.json``, ``<stem>.md`` and ``<stem>.png`` into ``folder``; returns the paths."""
    folder = Path(folder)
    paths = {"json": folder / f"{stem}.json", "markdown": folder / f"{stem}.md",
             "chart": folder / f"{stem}.png"}
    atomic_write_text(paths["json"], json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    plot_accuracy(report, paths["chart"])
    atomic_write_text(paths["markdown"], format_markdown(report, chart=paths["chart"].name) + "\n")
    return paths
