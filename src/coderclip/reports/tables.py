"""Human-readable renderings of reports (terminal text and Markdown) and their shared labels."""

from __future__ import annotations


def _table(header: list[str], rows: list[list[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] +
                     [fmt.format(*r) for r in rows])


def _pm(method: dict, key: str) -> str:
    """``61.20`` or, for a method run over several seeds, ``61.20 ± 0.31``; ``-`` when missing."""
    if method.get(key) is None:
        return "-"
    std = method.get(f"{key}_std")
    return f"{method[key]:.2f}" + (f" ± {std:.2f}" if std is not None else "")


def format_summary(report: dict, markdown: bool = False) -> str:
    """Methods side by side, the ablation ladder and the rerank counts."""
    ds = report.get("dataset", {})
    out = [f"{ds.get('name', 'dataset')}: {report['n_images']} images, "
           f"{ds.get('classes', len(report.get('per_class', [])))} classes"]
    skipped = report.get("skipped_images") or []
    if skipped:
        out.append(f"({len(skipped)} unreadable image(s) skipped)")
    methods = list(report["methods"].values())
    header, keys = ["method", "top-1 %", "top-5 %"], ["top1", "top5"]
    if any(m.get("mean_per_class_recall") is not None for m in methods):   # not in the demo's seed means
        header.append("mean per-class recall %")
        keys.append("mean_per_class_recall")
    rows = [[m["label"], *(_pm(m, k) for k in keys)] for m in methods]
    out += ["", _table(header, rows, markdown)]
    if report.get("ablation"):
        rows = [[k, f"{v:.2f}"] for k, v in report["ablation"].items()]
        out += ["", _table(["ablation", "top-1 %"], rows, markdown)]
    rr = report.get("rerank")
    if rr:
        out += ["", f"rerank (K={rr['top_k']}, tau={rr['tau']}): {rr['reranked']} reranked, "
                    f"{rr['changed']} changed, {rr['wrong_to_right']} wrong->right, "
                    f"{rr['right_to_wrong']} right->wrong"]
        sweep = "  ".join(f"{s['tau']:g}:{s['top1']:.2f}" for s in rr["tau_sweep"])
        out.append(f"accuracy vs tau (post-hoc, on these images; not used to choose tau): {sweep}")
    return "\n".join(out)


def method_labels(runs: list[dict]) -> dict[str, str]:
    """method key -> display label, in report order (charts read nothing but the report)."""
    out: dict[str, str] = {}
    for r in runs:
        for m, v in r["methods"].items():
            out.setdefault(m, v["label"])
    return out
