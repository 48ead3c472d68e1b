"""A benchmark report on disk: ``report.json``, ``report.md`` and the charts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .._io import atomic_write_text
from .charts import write_charts
from .tables import _table, method_labels


def write_benchmark(report: dict, out_dir: str | os.PathLike, charts: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and (unless ``charts=False``) ``charts/*.png`` into
    ``out_dir``; returns the paths. The chart file names (relative to ``out_dir``) are recorded
    in ``report["charts"]``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    charts = write_charts(report, out / "charts") if charts else {}
    report["charts"] = {k: str(p.relative_to(out)) for k, p in charts.items()}
    paths = {"json": out / "report.json", "markdown": out / "report.md"}
    atomic_write_text(paths["json"], json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(paths["markdown"], benchmark_markdown(report))
    paths.update({f"chart:{k}": p for k, p in charts.items()})
    return paths


def _f(x) -> str:
    return "–" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.2f}"


def _md(header: list[str], rows: list[list[str]]) -> list[str]:
    return _table(header, rows, markdown=True).splitlines()


def benchmark_markdown(report: dict) -> str:
    """The report as Markdown: accuracy tables, ablation, rerank counts, protocol, provenance."""
    prov = report["provenance"]
    st = report["settings"]
    runs = report["runs"]
    labels = method_labels(runs)
    lines = ["# coderclip benchmark", "",
             f"coderclip {prov['coderclip_version']} · templates {prov['templates_version']} · "
             f"torch {prov['torch_version']} · seed {prov['seed']} · {report['created']}", ""]
    if prov.get("command"):
        lines += [f"Command: `{prov['command']}`", ""]
    for metric, title in (("top1", "Top-1 accuracy (%)"), ("top5", "Top-5 accuracy (%)"),
                          ("mean_per_class_recall", "Mean per-class recall (%)")):
        lines += [f"## {title}", ""]
        rows = [[r["dataset"]["name"], f"`{r['model']}`", str(r["n_images"]),
                 *(_f(r["methods"].get(m, {}).get(metric)) for m in labels)] for r in runs]
        lines += _md(["dataset", "model", "images", *labels.values()], rows) + [""]
    lines += ["## Ablation ladder (top-1 %)", "",
              "Heuristic classifier with the name prompt (P), then attributes (Att), analogous "
              "concepts (Ana) and synonyms (Syn) added; the last column adds the one-vs-one rerank.", ""]
    steps = list(dict.fromkeys(s for r in runs for s in r["ablation"]))
    lines += _md(["dataset", "model", *steps],
                    [[r["dataset"]["name"], f"`{r['model']}`", *(_f(r["ablation"].get(s)) for s in steps)]
                     for r in runs]) + [""]
    lines += ["## Rerank", "",
              "Samples reranked (confidence gap below τ), and how many of them changed prediction: "
              "wrong → right, right → wrong, wrong → another wrong.", ""]
    rows = []
    for r in runs:
        rr, p = r["rerank"], r["protocol"]
        rows.append([r["dataset"]["name"], f"`{r['model']}`", f"{p['tau']:g} ({p['tau_source']})",
                     f"{p['top_k']} ({p['top_k_source']})", str(rr["reranked"]), str(rr["changed"]),
                     str(rr["wrong_to_right"]), str(rr["right_to_wrong"]), str(rr["wrong_to_wrong"])])
    lines += _md(["dataset", "model", "τ", "K", "reranked", "changed", "wrong → right",
                     "right → wrong", "wrong → wrong"], rows) + [""]
    lines += ["## Accuracy versus τ and K (CODER + rerank, top-1 %, post-hoc)", "",
              "Post-hoc, on the test images, for understanding only; never used to choose τ or K. "
              "The τ and K used above were "
              + ("chosen on each dataset's validation split where it has one (source in the rerank "
                 "table), else fixed before the run." if st["tau_from"] not in (None, "fixed")
                 or st["k_from"] not in (None, "fixed")
                 else "fixed before the run (not chosen on these numbers)."), ""]
    tau_vals = [s["tau"] for s in runs[0]["rerank"]["tau_sweep"]] if runs else []
    lines += _md(["dataset", "model", *(f"τ={t:g}" for t in tau_vals)],
                    [[r["dataset"]["name"], f"`{r['model']}`",
                      *(_f(s["top1"]) for s in r["rerank"]["tau_sweep"])] for r in runs]) + [""]
    k_vals = [s["top_k"] for s in runs[0]["rerank"]["k_sweep"]] if runs else []
    lines += _md(["dataset", "model", *(f"K={k}" for k in k_vals)],
                    [[r["dataset"]["name"], f"`{r['model']}`",
                      *(_f(s["top1"]) for s in r["rerank"]["k_sweep"])] for r in runs]) + [""]
    sel = [r for r in runs if r["protocol"]["selection"]]
    if sel:
        lines += ["## Selection on the validation split", ""]
        for r in sel:
            s = r["protocol"]["selection"]
            lines.append(f"- {r['dataset']['name']} / `{r['model']}`: τ = {s['tau']:g}, K = "
                         f"{s['top_k']} (val top-1 {_f(s['top1'])} % on {s['images']} images; "
                         f"val split: {s['split_description']})")
        lines.append("")
    lines += ["## Most confused class pairs (CODER + rerank)", ""]
    for r in runs:
        pairs = r["confused_pairs"][:5]
        shown = "; ".join(f"{p['true']} → {p['predicted']} ({p['count']})" for p in pairs) or "none"
        lines.append(f"- {r['dataset']['name']} / `{r['model']}`: {shown}")
    lines += ["", "## Provenance", ""]
    for m in report["models"]:
        files = ", ".join(f"`{Path(f['path']).name}` sha256 `{f['sha256'][:16]}…`" for f in m["files"])
        lines.append(f"- model `{m['spec']}`: identity `{m['identity']}`"
                     + (f"; weights {files}" if files else "; weights file not found on disk"))
    for d in report["datasets"]:
        kn = d["knowledge"] or "class names only"
        kdesc = f"{kn} (sha256 `{d['knowledge_sha256'][:16]}…`)" if d["knowledge_sha256"] else kn
        lines.append(f"- dataset {d['name']} ({d['loader']}): `{d['root']}`, {d['test_images']} test images, "
                     f"{d['classes']} classes, domain {d['domain']}; knowledge {kdesc}")
    skipped = sum(len(r["skipped_images"]) for r in runs)
    if skipped:
        lines.append(f"- {skipped} unreadable image(s) skipped (listed in report.json)")
    charts = report.get("charts") or {}
    if charts:
        lines += ["", "## Charts", ""]
        lines += [f"![{k}]({v})" for k, v in charts.items()]
    return "\n".join(lines) + "\n"
