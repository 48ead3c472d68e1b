"""Reproducible zero-shot benchmarks: standard datasets × models × methods, in one call.

For every (model, dataset) pair: build the text bank from the knowledge (by default the shipped
pack named like the dataset), embed the test images (through the feature cache), compute every
method's predictions, then read the labels and score. τ and K are either fixed before the run or
chosen on the dataset's validation split (never on the test split); the report says which.

Output (:func:`write_benchmark`): ``report.json`` (format ``coderclip-benchmark-report``,
versioned), ``report.md`` and PNG charts under ``charts/``. docs/benchmark.md describes every field.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ._version import __version__
from .defaults import DEFAULT_TAU, DEFAULT_TOP_K
from .errors import ConfigError, DatasetError

log = logging.getLogger(__name__)

BENCHMARK_FORMAT = "coderclip-benchmark-report"
BENCHMARK_VERSION = 1
#: Values of ``tau_from`` / ``k_from``: where τ and K come from.
SELECTION_SOURCES = (None, "val")


@dataclasses.dataclass
class BenchmarkDataset:
    """One dataset of a benchmark: registry name, root folder, optional knowledge (a file or the
    name of a shipped pack; default: the pack named like the dataset, if any)."""

    name: str
    root: str
    knowledge: str | None = None


# ---------------------------------------------------------------------------------- inputs
def load_dataset(name: str, root: str, split: str = "test"):
    """A standard dataset split through :data:`coderclip.datasets.LOADERS`."""
    from .datasets import LOADERS

    if name not in LOADERS:
        raise DatasetError(f"unknown dataset {name!r}; known datasets: {', '.join(sorted(LOADERS))}")
    return LOADERS[name](root, split=split)


def resolve_knowledge(source: str | None, dataset, pack_name: str | None = None):
    """(knowledge aligned to the dataset's classes, file it came from or None, description).

    Without ``source``, the shipped pack called ``pack_name`` (the dataset's registry name) is
    used when there is one, else names-only knowledge in the dataset's domain.
    """
    from .knowledge import Knowledge, load_knowledge
    from .packs import has_pack, pack_path

    if source is None and pack_name and has_pack(pack_name):
        source = pack_name
    if source is None:
        kn = Knowledge.from_class_names(dataset.class_names, domain=dataset.domain, name=dataset.name)
        return kn, None, "class names only (no knowledge pack for this dataset)"
    kn = load_knowledge(source)
    path = str(pack_path(source)) if not os.path.exists(source) and has_pack(source) else source
    return kn.align(dataset.class_names), path, source


def weights_record(encoder) -> dict:
    """The model's weight files with their SHA-256, where they can be found on disk."""
    from .encoders.fingerprint import _file_digest

    files = []
    for f in _weight_files(encoder):
        try:
            files.append({"path": str(f), "sha256": _file_digest(f)})
        except OSError:
            pass
    return {"name": encoder.name, "identity": encoder.identity, "files": files}


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt")


def _weight_files(encoder) -> list[Path]:
    def folder_files(folder: Path) -> list[Path]:
        return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)

    model = getattr(encoder, "model_name", None)
    pretrained = getattr(encoder, "pretrained", None)
    if model is not None:  # open_clip
        if model.startswith("local-dir:"):
            return folder_files(Path(model[len("local-dir:"):]).expanduser())
        if pretrained and Path(os.path.expanduser(pretrained)).is_file():
            return [Path(os.path.expanduser(pretrained))]
        if model.startswith("hf-hub:"):
            return _hf_cached(model[len("hf-hub:"):], ("open_clip_model.safetensors",
                                                      "open_clip_pytorch_model.bin"))
        if pretrained:
            try:
                import open_clip

                cfg = open_clip.get_pretrained_cfg(model, pretrained) or {}
            except Exception:
                cfg = {}
            repo = (cfg.get("hf_hub") or "").strip("/")
            if repo:
                return _hf_cached(repo, ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"))
            url = cfg.get("url") or ""
            cached = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
            return [cached] if url and cached.is_file() else []
        return []
    name = getattr(encoder, "name", "")
    if name.startswith("hf:"):  # transformers
        folder = Path(name[3:]).expanduser()
        if folder.is_dir():
            return folder_files(folder)
        return _hf_cached(name[3:], ("model.safetensors", "pytorch_model.bin"))
    return []


def _hf_cached(repo: str, names: Sequence[str]) -> list[Path]:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return []
    out = []
    for n in names:
        try:
            found = try_to_load_from_cache(repo, n)
        except Exception:
            continue
        if isinstance(found, str) and os.path.isfile(found):
            out.append(Path(found))
    return out


# ---------------------------------------------------------------------------------- selection
def select_on_val(x, bank, labels_of, *, tau: float, top_k: int, taus: Sequence[float],
                  ks: Sequence[int], tune_tau: bool, tune_k: bool) -> dict:
    """Choose τ and/or K by CODER + rerank top-1 on held-out images ``x`` ``[N, D]``.

    ``labels_of(kept)`` returns the held-out labels; it is called only after every prediction of
    the grid is computed. Ties go to the smaller τ (fewer samples reranked), then the smaller K.
    """
    from .evaluation import predict_zero_shot

    tau_grid = sorted(set(float(t) for t in taus)) if tune_tau else [float(tau)]
    k_grid = sorted(set(int(k) for k in ks)) if tune_k else [int(top_k)]
    preds = {k: predict_zero_shot(x, bank, tau=tau_grid[0], top_k=k, taus=tau_grid, ks=(),
                                  ablation=False) for k in k_grid}
    labels = labels_of()
    grid = []
    for k in k_grid:
        for t in tau_grid:
            acc = float((preds[k].tau_sweep[t] == labels).mean() * 100.0)
            grid.append({"tau": t, "top_k": k, "top1": acc})
    best = max(grid, key=lambda g: (g["top1"], -g["tau"], -g["top_k"]))
    return {"images": int(len(labels)), "grid": grid, "tau": best["tau"], "top_k": best["top_k"],
            "top1": best["top1"]}


# ---------------------------------------------------------------------------------- running
def run_benchmark(datasets: Sequence[BenchmarkDataset], models: Sequence[str], *,
                  tau: float = DEFAULT_TAU, top_k: int = DEFAULT_TOP_K,
                  tau_from: str | None = None, k_from: str | None = None,
                  taus: Sequence[float] | None = None, ks: Sequence[int] | None = None,
                  seed: int = 0, device: str | None = None, precision: str | None = None,
                  batch_size: int = 64, num_workers: int | None = None, cache: bool = True,
                  show_progress_bar: bool = False, encoders: dict | None = None) -> dict:
    """Evaluate every model on every dataset; returns the benchmark report (a JSON-able dict).

    ``tau_from`` / ``k_from``: ``None`` keeps ``tau`` / ``top_k`` as given; ``"val"`` chooses
    them on each dataset's validation split. ``encoders`` maps model specs to already loaded
    encoders (used instead of loading them).
    """
    import torch

    from .encoders import load_encoder
    from .evaluation import DEFAULT_KS, DEFAULT_TAUS, predict_zero_shot, provenance, score_zero_shot
    from .feature_cache import encode_dataset
    from .knowledge import file_sha256
    from .templates import TEMPLATES_VERSION
    from .textbank import TEXT_TYPES, TextBank

    for name, value in (("tau_from", tau_from), ("k_from", k_from)):
        if value not in SELECTION_SOURCES:
            raise ConfigError(f"{name} must be None or 'val', got {value!r}")
    if not datasets:
        raise ConfigError("give at least one dataset")
    if not models:
        raise ConfigError("give at least one model")
    taus = tuple(DEFAULT_TAUS if taus is None else taus)
    ks = tuple(DEFAULT_KS if ks is None else ks)
    if tau_from is None and float(tau) not in [float(t) for t in taus]:
        taus = tuple(sorted({*map(float, taus), float(tau)}))
    selecting = tau_from == "val" or k_from == "val"
    torch.manual_seed(seed)
    np.random.seed(seed)

    # Every dataset is opened (and every knowledge file read) before any model is loaded, so a
    # broken layout fails in seconds.
    prepared = []
    for spec in datasets:
        test = load_dataset(spec.name, spec.root, "test")
        val = load_dataset(spec.name, spec.root, "val") if selecting else None
        if val is not None and val.class_names != test.class_names:
            raise DatasetError(f"{test.name}: the val split has other classes than the test split "
                               f"({len(val.class_names)} vs {len(test.class_names)}); τ and K "
                               "cannot be chosen on it")
        kn, kfile, ksource = resolve_knowledge(spec.knowledge, test, pack_name=spec.name)
        prepared.append((spec, test, val, kn, kfile, ksource))

    runs, model_records = [], []
    encoders = dict(encoders or {})
    for model_spec in models:
        encoder = encoders.get(model_spec) or load_encoder(model_spec, device=device, precision=precision)
        weights = weights_record(encoder)
        model_records.append({"spec": model_spec, **weights})
        for spec, test, val, kn, kfile, ksource in prepared:
            log.info("benchmark: %s on %s", model_spec, spec.name)
            bank = TextBank.build(kn, encoder, types=(*TEXT_TYPES,), cache=cache,
                                  show_progress_bar=show_progress_bar)
            protocol = {"test_split": "test", "tau": float(tau), "tau_source": "fixed",
                        "top_k": int(top_k), "top_k_source": "fixed", "selection": None}
            if selecting:
                vfeat = encode_dataset(encoder, val, batch_size=batch_size, num_workers=num_workers,
                                       cache=cache, show_progress_bar=show_progress_bar)
                if not vfeat.encoded.kept:
                    raise DatasetError(f"none of the {len(val)} validation images of {spec.name} "
                                       "could be read")
                kept_val = np.asarray(vfeat.encoded.kept, dtype=np.int64)
                sel = select_on_val(vfeat.encoded.embeddings, bank,
                                    lambda: val.labels()[kept_val],
                                    tau=tau, top_k=top_k, taus=taus, ks=ks,
                                    tune_tau=tau_from == "val", tune_k=k_from == "val")
                sel["split"] = "val"
                sel["split_description"] = _split_description(spec.name)
                protocol["selection"] = sel
                if tau_from == "val":
                    protocol["tau"], protocol["tau_source"] = sel["tau"], "val"
                if k_from == "val":
                    protocol["top_k"], protocol["top_k_source"] = sel["top_k"], "val"
            feats = encode_dataset(encoder, test, batch_size=batch_size, num_workers=num_workers,
                                   cache=cache, show_progress_bar=show_progress_bar)
            enc = feats.encoded
            if not enc.kept:
                raise DatasetError(f"none of the {len(test)} images of {spec.name} could be read")
            run_taus = taus if protocol["tau"] in taus else tuple(sorted({*taus, protocol["tau"]}))
            preds = predict_zero_shot(enc.embeddings, bank, tau=protocol["tau"],
                                      top_k=protocol["top_k"], taus=run_taus, ks=ks)
            labels = test.labels()[np.asarray(enc.kept, dtype=np.int64)]  # read only now
            run = {
                "dataset": {**test.describe(), "domain": test.domain},
                "model": model_spec,
                "knowledge": {"source": ksource, "file": kfile, "name": kn.name,
                              "domain": kn.domain, "counts": kn.counts()},
                "protocol": protocol,
                "features": {"cache_hit": feats.hit, "file": str(feats.path) if feats.path else None,
                             "key": feats.key},
                "skipped_images": [{"path": p, "reason": r} for p, r in enc.failures],
            }
            run.update(score_zero_shot(preds, labels, kn.class_names))
            run["provenance"] = provenance(encoder, kn, bank, kfile,
                                           extra={"seed": seed, "weights": weights})
            runs.append(run)

    return {
        "format": BENCHMARK_FORMAT,
        "version": BENCHMARK_VERSION,
        "created": datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        "settings": {"tau": float(tau), "top_k": int(top_k), "tau_from": tau_from, "k_from": k_from,
                     "taus": [float(t) for t in taus], "ks": [int(k) for k in ks], "seed": seed},
        "provenance": {
            "coderclip_version": __version__, "templates_version": TEMPLATES_VERSION,
            "torch_version": torch.__version__, "python": platform.python_version(),
            "command": " ".join(sys.argv) if sys.argv and sys.argv[0] else None, "seed": seed,
            "labels_read_after_predictions": True,
        },
        "models": model_records,
        "datasets": [{"name": t.name, "loader": s.name, "root": s.root, "knowledge": ks_,
                      "knowledge_file": kf, "knowledge_sha256": file_sha256(kf) if kf else None,
                      "test_images": len(t), "val_images": len(v) if v is not None else None,
                      "classes": len(t.class_names), "domain": t.domain}
                     for s, t, v, _, kf, ks_ in prepared],
        "summary": summary_rows(runs),
        "runs": runs,
    }


def _split_description(name: str) -> str:
    from .datasets._layout import DATASETS

    info = DATASETS.get(name)
    return info.splits if info else "the dataset's val split"


def summary_rows(runs: Sequence[dict]) -> list[dict]:
    """One row per (dataset, model, method): top-1 and top-5."""
    return [{"dataset": r["dataset"]["name"], "model": r["model"], "method": m,
             "label": v["label"], "top1": v["top1"], "top5": v["top5"]}
            for r in runs for m, v in r["methods"].items()]


# ---------------------------------------------------------------------------------- output
def slug(text: str) -> str:
    """A file-name-safe form of a dataset or model name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "x"


def write_benchmark(report: dict, out_dir: str | os.PathLike, charts: bool = True) -> dict[str, Path]:
    """Write ``report.json``, ``report.md`` and (unless ``charts=False``) ``charts/*.png`` into
    ``out_dir``; returns the paths. The chart file names (relative to ``out_dir``) are recorded
    in ``report["charts"]``."""
    import json

    from .charts import write_charts
    from .knowledge import atomic_write_text

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


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|",
            *("| " + " | ".join(r) + " |" for r in rows)]


def benchmark_markdown(report: dict) -> str:
    """The report as Markdown: accuracy tables, ablation, rerank counts, protocol, provenance."""
    from .charts import _method_labels

    prov = report["provenance"]
    st = report["settings"]
    runs = report["runs"]
    labels = _method_labels(runs)
    lines = ["# coderclip benchmark", "",
             f"coderclip {prov['coderclip_version']} · templates {prov['templates_version']} · "
             f"torch {prov['torch_version']} · seed {prov['seed']} · {report['created']}", ""]
    if prov.get("command"):
        lines += [f"Command: `{prov['command']}`", ""]
    for metric, title in (("top1", "Top-1 accuracy (%)"), ("top5", "Top-5 accuracy (%)")):
        lines += [f"## {title}", ""]
        rows = [[r["dataset"]["name"], f"`{r['model']}`", str(r["n_images"]),
                 *(_f(r["methods"].get(m, {}).get(metric)) for m in labels)] for r in runs]
        lines += _table(["dataset", "model", "images", *labels.values()], rows) + [""]
    lines += ["## Ablation ladder (top-1 %)", "",
              "Heuristic classifier with the name prompt (P), then attributes (Att), analogous "
              "concepts (Ana) and synonyms (Syn) added; the last column adds the one-vs-one rerank.", ""]
    steps = list(dict.fromkeys(s for r in runs for s in r["ablation"]))
    lines += _table(["dataset", "model", *steps],
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
    lines += _table(["dataset", "model", "τ", "K", "reranked", "changed", "wrong → right",
                     "right → wrong", "wrong → wrong"], rows) + [""]
    lines += ["## Accuracy versus τ and K (CODER + rerank, top-1 %)", "",
              "Reported for understanding only: the τ and K used above were "
              + ("chosen on each dataset's validation split." if st["tau_from"] or st["k_from"]
                 else "fixed before the run (not chosen on these numbers)."), ""]
    tau_vals = [s["tau"] for s in runs[0]["rerank"]["tau_sweep"]] if runs else []
    lines += _table(["dataset", "model", *(f"τ={t:g}" for t in tau_vals)],
                    [[r["dataset"]["name"], f"`{r['model']}`",
                      *(_f(s["top1"]) for s in r["rerank"]["tau_sweep"])] for r in runs]) + [""]
    k_vals = [s["top_k"] for s in runs[0]["rerank"]["k_sweep"]] if runs else []
    lines += _table(["dataset", "model", *(f"K={k}" for k in k_vals)],
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
