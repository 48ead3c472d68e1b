"""Model load memory and start-up time: coderclip versus plain open_clip / transformers loops.

    PYTHONPATH=src python benchmarks/bench_load.py --json out/load.json [--repeats 5]

Every measurement runs in a fresh process (``benchmarks/_load_child.py``), so that peak resident
memory (the process's own ``VmHWM``, not ``ru_maxrss``, which Linux carries over from the parent)
and import times are those of a cold start; the variants are interleaved (A, B, A, B, ...) and
the median of the repeats is reported.

* ``memory``: peak RSS when loading the same random-weight ViT-B-32 checkpoint (``.safetensors``
  and ``.pt``) through coderclip and through ``open_clip.create_model_and_transforms(pretrained=
  file)``, and the same transformers CLIP ViT-B/32 folder through coderclip (``hf:FOLDER``) and
  ``CLIPModel.from_pretrained``; each then classifies one image among 10 prompts.
* ``startup``: seconds from process start to the first result for one image, for those loops and
  for ``coderclip classify IMAGE --knowledge cifar10`` (CODER with rerank, warm text cache).
* ``imports``: ``python -X importtime`` of each loop's imports: total, and the share of torch,
  torchvision, open_clip, transformers.

The checkpoints are random (``pretrained=None`` weights saved to disk): memory and time do not
depend on the values. They are made once in ``--workdir`` (default ``out/bench-load``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, print_table, write_json  # noqa: E402

CHILD = str(Path(__file__).resolve().parent / "_load_child.py")


def make_assets(work: Path, arch: str = "ViT-B-32", hf_config: dict | None = None) -> dict[str, str]:
    """Random-weight checkpoints (open_clip ``.safetensors`` and ``.pt``, a transformers folder)
    and one JPEG; made once, reused afterwards."""
    import numpy as np
    import torch
    from PIL import Image

    work.mkdir(parents=True, exist_ok=True)
    st, pt, hf, img = (work / f"{arch}.safetensors", work / f"{arch}.pt", work / "hf-clip",
                       work / "image.jpg")
    if not (st.is_file() and pt.is_file()):
        import open_clip
        from safetensors.torch import save_file

        torch.manual_seed(0)
        state = {k: v.contiguous() for k, v in open_clip.create_model(arch).state_dict().items()}
        save_file(state, str(st))
        torch.save(state, pt)
        del state
    if not (hf / "config.json").is_file():
        from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

        from tests.conftest import _clip_tokenizer

        hf.mkdir(exist_ok=True)
        tok = _clip_tokenizer(hf)
        cfg = CLIPConfig(**(hf_config or {}))
        cfg.text_config.vocab_size = len(tok)
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            setattr(cfg.text_config, key, getattr(tok, key))
        torch.manual_seed(0)
        CLIPModel(cfg).save_pretrained(hf)
        tok.save_pretrained(hf)
        CLIPImageProcessor().save_pretrained(hf)
    if not img.is_file():
        rng = np.random.default_rng(0)
        Image.fromarray(rng.integers(0, 256, (256, 320, 3), dtype=np.uint8)).save(img, quality=90)
    return {"safetensors": str(st), "pt": str(pt), "hf": str(hf), "image": str(img), "arch": arch}


def _env() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), OMP_NUM_THREADS="1",
               HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("PYTHONSTARTUP", None)
    return env


def run_child(variant: str, model: str, image: str, importtime: bool = False) -> dict:
    """Run one child process; returns its JSON line plus the wall time from spawn to exit."""
    cmd = [sys.executable, *(["-X", "importtime"] if importtime else []), CHILD, variant, model, image]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_s"] = wall
    if importtime:
        out["importtime"] = parse_importtime(proc.stderr)
    return out


def run_cli(args: list[str]) -> float:
    """Wall time of one ``coderclip`` command from spawn to exit."""
    cmd = [sys.executable, "-m", "coderclip", *args]
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"coderclip {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    return wall


def parse_importtime(stderr: str) -> dict[str, float]:
    """Cumulative import seconds of the top-level packages that matter, and the total."""
    cumulative: dict[str, float] = {}
    total = 0.0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line[len("import time:"):].split("|")
        try:
            self_us, cum_us = int(parts[0]), int(parts[1])
        except ValueError:
            continue  # the header line
        name = parts[2].rstrip()
        total += self_us
        stripped = name.strip()
        if stripped in ("torch", "torchvision", "open_clip", "transformers", "coderclip", "timm"):
            cumulative[stripped] = max(cumulative.get(stripped, 0.0), cum_us / 1e6)
    cumulative["total"] = total / 1e6
    return cumulative


def median_of(runs: list[dict], key) -> float:
    return statistics.median(key(r) for r in runs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", default=None)
    ap.add_argument("--workdir", default="out/bench-load")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--arch", default="ViT-B-32")
    ap.add_argument("--sections", default="memory,startup,imports")
    ap.add_argument("--formats", default="safetensors,pt,hf",
                    help="which checkpoints the memory section loads (safetensors, pt, hf)")
    ap.add_argument("--hf-config", default=None,
                    help="JSON CLIPConfig arguments for the transformers folder (default: ViT-B/32)")
    args = ap.parse_args()
    sections = set(args.sections.split(","))
    a = make_assets(Path(args.workdir), args.arch, json.loads(args.hf_config) if args.hf_config else None)
    result: dict = {"machine": machine(), "assets": a, "repeats": args.repeats}
    sizes = {k: os.path.getsize(a[k]) / 2**20 for k in ("safetensors", "pt")}
    sizes["hf"] = sum(f.stat().st_size for f in Path(a["hf"]).glob("*.safetensors")) / 2**20
    result["checkpoint_mb"] = sizes

    variants = {
        "safetensors": [("coderclip", f"open_clip:{a['arch']}:{a['safetensors']}"),
                        ("open_clip", f"{a['arch']}:{a['safetensors']}")],
        "pt": [("coderclip", f"open_clip:{a['arch']}:{a['pt']}"), ("open_clip", f"{a['arch']}:{a['pt']}")],
        "hf": [("coderclip", f"hf:{a['hf']}"), ("transformers", a["hf"])],
    }
    variants = {k: v for k, v in variants.items() if k in args.formats.split(",")}
    runs: dict[str, dict[str, list[dict]]] = {fmt: {v: [] for v, _ in vs} for fmt, vs in variants.items()}
    if sections & {"memory", "startup"}:
        for fmt, vs in variants.items():  # warm the page cache and the weights-fingerprint memo
            for v, m in vs:
                run_child(v, m, a["image"])
        for _ in range(args.repeats):
            for fmt, vs in variants.items():
                for v, m in vs:
                    runs[fmt][v].append(run_child(v, m, a["image"]))
        rows, mem = [], {}
        for fmt, vs in variants.items():
            (ours, _), (peer, _) = vs
            entry = {}
            for v, _ in vs:
                r = runs[fmt][v]
                entry[v] = {
                    "peak_rss_mb": median_of(r, lambda x: x["marks"]["first_result"]["peak_rss_mb"]),
                    "rss_after_imports_mb": median_of(r, lambda x: x["marks"]["imports"]["peak_rss_mb"]),
                    "rss_after_load_mb": median_of(r, lambda x: x["marks"]["loaded"]["peak_rss_mb"]),
                    "imported": r[0]["imported"], "prediction": r[0]["prediction"]}
            entry["ratio_peak"] = entry[ours]["peak_rss_mb"] / entry[peer]["peak_rss_mb"]
            mem[fmt] = entry
            for v, _ in vs:
                e = entry[v]
                rows.append([fmt, v, f"{sizes[fmt]:.0f}", f"{e['rss_after_imports_mb']:.0f}",
                             f"{e['rss_after_load_mb']:.0f}", f"{e['peak_rss_mb']:.0f}",
                             f"{entry['ratio_peak']:.2f}" if v == ours else ""])
        result["memory"] = mem
        print_table("Peak resident memory (MB, median of fresh processes)",
                    ["checkpoint", "loader", "file MB", "after imports", "after load",
                     "peak (1 image)", "ratio of peaks"], rows)

    if "startup" in sections:
        cli = ["classify", a["image"], "-m", f"open_clip:{a['arch']}:{a['safetensors']}",
               "-k", "cifar10", "--format", "json", "--workers", "0"]
        run_cli(cli)  # fills the text cache: the timed runs are warm
        cli_runs = []
        for _ in range(args.repeats):
            cli_runs.append(run_cli(cli))
        st = {"open_clip_plain": median_of(runs["safetensors"]["open_clip"], lambda x: x["wall_s"]),
              "coderclip_encoder": median_of(runs["safetensors"]["coderclip"], lambda x: x["wall_s"]),
              "coderclip_classify_cli": statistics.median(cli_runs)}
        if "hf" in runs:   # only when the transformers folder is among --formats
            st["transformers_plain"] = median_of(runs["hf"]["transformers"], lambda x: x["wall_s"])
            st["coderclip_hf_encoder"] = median_of(runs["hf"]["coderclip"], lambda x: x["wall_s"])
        base = st["open_clip_plain"]
        result["startup"] = {"wall_s": st, "ratio_vs_open_clip_plain": {k: v / base for k, v in st.items()},
                             "cli_command": "coderclip " + " ".join(cli)}
        print_table("Start to first result, one image (s, spawn to exit, median)",
                    ["path", "seconds", "vs plain open_clip loop"],
                    [[k, f"{v:.2f}", f"{v / base:.2f}x"] for k, v in st.items()])

    if "imports" in sections:
        imp = {}
        for v, m in variants["safetensors"] + variants["hf"][1:]:
            r = [run_child(v, m, a["image"], importtime=True)["importtime"] for _ in range(max(1, args.repeats // 2))]
            imp[v] = {k: statistics.median(x.get(k, 0.0) for x in r) for k in r[0]}
        hf_ours = [run_child("coderclip", variants["hf"][0][1], a["image"], importtime=True)["importtime"]
                   for _ in range(max(1, args.repeats // 2))]
        imp["coderclip (hf)"] = {k: statistics.median(x.get(k, 0.0) for x in hf_ours) for k in hf_ours[0]}
        result["imports"] = imp
        cols = ["total", "torch", "torchvision", "open_clip", "transformers", "coderclip"]
        print_table("python -X importtime (s, cumulative per package, median)", ["loop", *cols],
                    [[k, *(f"{d.get(c, 0.0):.2f}" if c in d else "-" for c in cols)] for k, d in imp.items()])
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
