"""A first ``coderclip evaluate`` (empty caches) against a plain open_clip evaluation loop.

    PYTHONPATH=src python benchmarks/bench_cold_run.py --json out/cold_run.json [--images 96] [--repeats 3]

Each run is a fresh process; coderclip's runs get a new, empty cache folder each time (no text
embeddings, no weight fingerprints, no load-time checks remembered), so every one is a first run.
The variants are interleaved and the median wall time (spawn to exit) is reported, with the number
of texts each coderclip run encoded (from its report). Also timed: the same evaluate with a warm
cache, with ``--methods coder`` (only CODER's texts), and optionally with other sources
(``--baseline-src``) for a before/after comparison. Random-weight ViT-B-32 checkpoint and generated JPEG files
(one sub-folder per CIFAR-10 class, knowledge pack ``cifar10``); made once in ``--workdir``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(HERE))

from _common import machine, print_table, write_json  # noqa: E402
from gpu_e2e import make_checkpoint, make_jpeg_folder  # noqa: E402


def _run(cmd: list[str], cache: str, src: str = str(ROOT / "src")) -> float:
    env = dict(os.environ, PYTHONPATH=src, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1",
               CODERCLIP_CACHE=cache)
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--workdir", default="out/bench-cold")
    ap.add_argument("--images", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--baseline-src", default=None,
                    help="also time a first evaluate with the coderclip sources in this folder "
                         "(e.g. an older checkout's src/), for a before/after comparison")
    ap.add_argument("--no-warm", action="store_true", help="skip the warm-cache runs")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    from coderclip.knowledge import load_knowledge

    classes = [c.replace(" ", "_") for c in load_knowledge("cifar10").class_names]
    folder = make_jpeg_folder(work / f"jpegs-{args.images}", classes, args.images, (320, 240), 2)
    ckpt = make_checkpoint(args.arch, work / f"{args.arch}.safetensors")
    report = work / "report.json"
    ours = [sys.executable, "-m", "coderclip", "evaluate", str(folder), "-m",
            f"open_clip:{args.arch}:{ckpt}", "-k", "cifar10", "--workers", str(args.workers),
            "--report", str(report)]
    plain = [sys.executable, str(HERE / "_plain_eval.py"), args.arch, str(ckpt), str(folder),
             str(args.workers)]
    src = str(ROOT / "src")
    variants = {"plain open_clip loop": (plain, None, src), "coderclip evaluate (cold)": (ours, "cold", src),
                "coderclip evaluate --methods coder (cold)": (ours + ["--methods", "coder"], "cold", src)}
    if args.baseline_src:
        variants["coderclip evaluate (cold), baseline sources"] = (ours, "cold", args.baseline_src)
    if not args.no_warm:
        warm_cache = str(work / "warm-cache")
        _run(ours, warm_cache)  # fills the warm cache
        variants["coderclip evaluate (warm cache)"] = (ours, warm_cache, src)
    times: dict[str, list[float]] = {k: [] for k in variants}
    texts: dict[str, dict] = {}
    for _ in range(args.repeats):
        for name, (cmd, cache, code) in variants.items():
            tmp = tempfile.mkdtemp(prefix="coderclip-cold-") if cache in (None, "cold") else cache
            times[name].append(_run(cmd, tmp, code))
            if cmd is not plain:
                texts[name] = json.loads(report.read_text())["provenance"]["text_bank"]
            if tmp != cache:
                shutil.rmtree(tmp, ignore_errors=True)
    base = statistics.median(times["plain open_clip loop"])
    rows, out = [], {}
    for name, ts in times.items():
        med = statistics.median(ts)
        n_texts = sum(texts[name].values()) if name in texts else None
        out[name] = {"median_s": med, "runs_s": ts, "ratio_vs_plain": med / base,
                     "texts": texts.get(name)}
        rows.append([name, f"{med:.1f}", f"{med / base:.2f}x", "-" if n_texts is None else n_texts])
    print_table(f"First run, {args.images} images (s, spawn to exit, median of {args.repeats})",
                ["run", "seconds", "vs plain loop", "texts encoded / in bank"], rows)
    write_json(args.json, {"machine": machine(), "images": args.images, "workers": args.workers,
                           "commands": {"coderclip": " ".join(ours), "plain": " ".join(plain)},
                           "results": out})
    return 0


if __name__ == "__main__":
    sys.exit(main())
