"""The scorer and the text-bank cache hit at an earlier commit versus now, same inputs, interleaved.

The earlier versions of ``scoring.py``, ``cache.py`` and ``textbank.py`` are read with ``git show``
and loaded beside the current package (as ``coderclip._*_before``), so both run in one process.

    PYTHONPATH=src python benchmarks/bench_before_after.py [--before 5771c62] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from _common import (RandomTextEncoder, SyntheticSpec, fmt_time, imagenet_sized_knowledge, machine, print_table,
                     synthetic_bank, synthetic_images, write_json)
from bench_coder_stage import IMAGE_NOISE, interleaved

INF = float("inf")
ROOT = Path(__file__).resolve().parents[1]


def load_before(commit: str, folder: Path) -> dict:
    """Old scoring / cache / textbank modules (old textbank wired to the old cache)."""
    mods = {}
    for name, fix in (("cache", None), ("scoring", None), ("textbank", ("from .cache import", "from ._cache_before import"))):
        src = subprocess.run(["git", "show", f"{commit}:src/coderclip/{name}.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        if fix:
            src = src.replace(*fix)
        path = folder / f"{name}.py"
        path.write_text(src)
        spec = importlib.util.spec_from_file_location(f"coderclip._{name}_before", path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    return mods


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", default="5771c62", help="commit to compare with")
    ap.add_argument("--classes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--images", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import coderclip.bank.cache as new_c
    import coderclip.scoring as new_s
    import coderclip.bank.textbank as new_t

    with tempfile.TemporaryDirectory() as tmp:
        old = load_before(args.before, Path(tmp))
        old_s, old_c, old_t = old["scoring"], old["cache"], old["textbank"]
        rows, results = [], {"scorer": [], "cache": {}}
        for C in args.classes:
            spec = SyntheticSpec(C, image_noise=IMAGE_NOISE)
            bank = synthetic_bank(spec)
            to, tn = old_s.CoderTables.from_bank(bank), new_s.CoderTables.from_bank(bank)
            x, _ = synthetic_images(spec, args.images)
            so, sn = old_s.heuristic_scores(x, to), new_s.heuristic_scores(x, tn)
            assert torch.allclose(so, sn, atol=1e-3)
            po = old_s.rerank_top_k(x, so, to, tau=INF).prediction
            pn = new_s.rerank_top_k(x, sn, tn, tau=INF).prediction
            t = interleaved({"h_old": lambda: old_s.heuristic_scores(x, to), "h_new": lambda: new_s.heuristic_scores(x, tn),
                             "r_old": lambda: old_s.rerank_top_k(x, so, to, tau=INF),
                             "r_new": lambda: new_s.rerank_top_k(x, sn, tn, tau=INF)}, repeats=args.repeats)
            B = x.shape[0]
            same = int((po == pn).sum())
            results["scorer"].append({"classes": C, **{k: v.median / B for k, v in t.items()}, "same": same})
            rows.append([f"{C:,}", fmt_time(t["h_old"].median / B), fmt_time(t["h_new"].median / B),
                         f"{t['h_old'].median / t['h_new'].median:.1f}x", fmt_time(t["r_old"].median / B),
                         fmt_time(t["r_new"].median / B), f"{t['r_old'].median / t['r_new'].median:.1f}x", f"{same}/{B}"])
        print_table(f"Scorer at {args.before} and now, per image, batch {args.images}, τ = ∞, CPU fp32, "
                    f"{args.threads} thread(s)",
                    ["classes", "heuristic before", "after", "gain", "rerank before", "after", "gain",
                     "same predictions"], rows)

        kn = imagenet_sized_knowledge(1000)
        enc = RandomTextEncoder(512)
        texts, _ = new_t.build_entries(kn, new_t.CODER_TYPES)
        co = old_c.TextEmbeddingCache(enc.identity, Path(tmp) / "old")
        cn = new_c.TextEmbeddingCache(enc.identity, Path(tmp) / "new")
        emb = torch.nn.functional.normalize(torch.randn(len(texts), 512), dim=1)
        co.add(texts, emb)
        cn.add(texts, emb)
        bo, bn = old_t.TextBank.build(kn, enc, cache=co), new_t.TextBank.build(kn, enc, cache=cn)
        assert torch.equal(bo.embeddings, bn.embeddings) and bo.texts == bn.texts
        t = interleaved({"build_old": lambda: old_t.TextBank.build(kn, enc, cache=co),
                         "build_new": lambda: new_t.TextBank.build(kn, enc, cache=cn),
                         "entries_old": lambda: old_t.build_entries(kn, old_t.CODER_TYPES),
                         "entries_new": lambda: new_t.build_entries(kn, new_t.CODER_TYPES),
                         "load_old": lambda: co.load(texts, 512), "load_new": lambda: cn.load(texts, 512)},
                        repeats=5)
        results["cache"] = {k: v.median for k, v in t.items()}
    print_table(f"Text-bank cache hit at {args.before} and now, {len(texts):,} texts, CPU",
                ["step", "before", "after", "gain"],
                [[n, fmt_time(t[f"{k}_old"].median), fmt_time(t[f"{k}_new"].median),
                  f"{t[f'{k}_old'].median / t[f'{k}_new'].median:.1f}x"]
                 for n, k in (("TextBank.build (all cached)", "build"), ("build_entries", "entries"),
                              ("TextEmbeddingCache.load", "load"))])
    write_json(args.json, {"machine": machine(), "before": args.before, **results})


if __name__ == "__main__":
    main()
