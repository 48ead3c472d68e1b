"""The CODER stage per image (heuristic classifier + one-vs-one rerank, and the explicit CODER
vectors φ), vectorised, against the authors' loop structure on the same inputs, and as a share of
the ViT-B/32 image encoder's time.

Synthetic text banks (benchmarks/_common.py): ~15 general texts per class, 4 one-vs-one texts for
each of 5 neighbours per class in both directions, clustered classes so that an image's top-5
candidates usually have one-vs-one texts between them. Images lie near a class centre; the noise
level gives roughly 60 % stage-1 accuracy and half the images under τ = 0.5.

The loop version (tests.reference.ReleaseLoopScorer) is slow at 10k-21k classes, so it runs
on the first ``--loop-images`` images only and its time is reported per image (extrapolated).
Both versions run interleaved (loop, vectorised, loop, ...) so machine load hits both alike.

    PYTHONPATH=src python benchmarks/bench_coder_stage.py [--classes 1000 10000 21000]
        [--threads 1] [--json out.json] [--no-encoder]
"""

from __future__ import annotations

import argparse
import gc
import time

import torch

from _common import (SyntheticSpec, Timing, fmt_time, machine, print_table, synthetic_bank,
                     synthetic_images, write_json)
from tests.reference import ReleaseLoopScorer
from coderclip.scoring import CoderTables, coder_vectors, heuristic_scores, rerank_top_k

INF = float("inf")
#: Noise of the synthetic images: about 60 % stage-1 accuracy, half the images under τ = 0.5.
IMAGE_NOISE = 6.0
#: Largest φ block computed at once (the explicit CODER vectors of 21k classes are 1.2 MB/image).
PHI_BYTES = 256 << 20


def vectorised_predict(x: torch.Tensor, tables: CoderTables, tau: float, batch: int,
                       top_k: int = 5) -> torch.Tensor:
    """Heuristic + rerank, batch by batch: the zero-shot CODER stage."""
    out = []
    for s in range(0, x.shape[0], batch):
        xb = x[s:s + batch]
        out.append(rerank_top_k(xb, heuristic_scores(xb, tables), tables, top_k=top_k, tau=tau).prediction)
    return torch.cat(out)


def interleaved(fns: dict, repeats: int, warmup: int = 1) -> dict[str, Timing]:
    """Time several functions round-robin so that load changes affect all of them alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    runs: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            runs[k].append(time.perf_counter() - t0)
    return {k: Timing(v) for k, v in runs.items()}


def bench_classes(C: int, n_images: int, n_loop: int, batch: int, loop_batch: int, repeats: int,
                  loop_repeats: int, seed: int = 0) -> dict:
    spec = SyntheticSpec(C, image_noise=IMAGE_NOISE)
    t0 = time.perf_counter()
    bank = synthetic_bank(spec, seed=seed)
    tables = CoderTables.from_bank(bank)
    loop = ReleaseLoopScorer(bank)
    setup = time.perf_counter() - t0
    x, y = synthetic_images(spec, n_images, seed=seed)
    xl = x[:n_loop]
    counts = {t: bank.count(t) for t in ("name", "synonym", "attribute", "analogous", "contrast")}
    general = counts["name"] + counts["synonym"] + counts["attribute"] + counts["analogous"]
    del bank
    gc.collect()

    # same predictions? (stage 1 and final, on the loop's images, τ = ∞ and τ = 0.5)
    agree = {}
    with torch.inference_mode():
        s_loop = torch.cat([loop.heuristic_scores(xl[i:i + loop_batch]) for i in range(0, n_loop, loop_batch)])
        s_vec = heuristic_scores(xl, tables)
        agree["stage1"] = int((s_loop.argmax(1) == s_vec.argmax(1)).sum())
        for tau in (INF, 0.5):
            p_loop = loop.predict(xl, top_k=5, tau=tau, batch_size=loop_batch)
            p_vec = vectorised_predict(xl, tables, tau, batch)
            agree[f"final_tau_{tau}"] = int((p_loop == p_vec).sum())

    with torch.inference_mode():
        # end to end, τ = ∞ (every image reranked: the rerank's worst case), and the loop's two
        # stages on the same images, all interleaved so that load changes hit every entry alike
        s_all = [loop.heuristic_scores(xl[i:i + loop_batch]) for i in range(0, n_loop, loop_batch)]

        def loop_stage1():
            for i in range(0, n_loop, loop_batch):
                loop.heuristic_scores(xl[i:i + loop_batch])

        def loop_rerank():
            for j, i in enumerate(range(0, n_loop, loop_batch)):
                loop.rerank(xl[i:i + loop_batch], s_all[j], 5, INF)

        t = interleaved({
            "loop": lambda: loop.predict(xl, top_k=5, tau=INF, batch_size=loop_batch),
            "loop_stage1": loop_stage1,
            "loop_rerank": loop_rerank,
            "vec_same_batch": lambda: vectorised_predict(xl, tables, INF, loop_batch),
            "vec_big_batch": lambda: vectorised_predict(x, tables, INF, batch),
        }, repeats=loop_repeats)
        # vectorised breakdown at the big batch
        xb = x[:batch]
        sb = heuristic_scores(xb, tables)
        phi_batch = max(1, min(batch, PHI_BYTES // (4 * tables.general_emb.shape[0])))
        xp = x[:phi_batch]
        tv = interleaved({
            "heuristic": lambda: heuristic_scores(xb, tables),
            "rerank_inf": lambda: rerank_top_k(xb, sb, tables, top_k=5, tau=INF),
            "rerank_0.5": lambda: rerank_top_k(xb, sb, tables, top_k=5, tau=0.5),
            "phi": lambda: coder_vectors(xp, tables),
        }, repeats=repeats)
        rr = rerank_top_k(x, heuristic_scores(x, tables), tables, top_k=5, tau=0.5)
        acc1 = float((rr.candidates[:, 0] == y).float().mean())
        reranked = float(rr.reranked.float().mean())

    per = lambda timing, n: timing.median / n  # noqa: E731
    out = {
        "classes": C, "general_texts": general, "contrast_texts": counts["contrast"],
        "texts": counts, "setup_s": setup, "loop_images": n_loop, "images": n_images,
        "batch": batch, "loop_batch": loop_batch, "phi_batch": phi_batch,
        "stage1_accuracy": acc1, "reranked_fraction_tau_0.5": reranked,
        "agree": agree,
        "per_image_s": {
            "loop_total": per(t["loop"], n_loop),
            "loop_stage1": per(t["loop_stage1"], n_loop),
            "loop_rerank": per(t["loop_rerank"], n_loop),
            "vec_total_same_batch": per(t["vec_same_batch"], n_loop),
            "vec_total_big_batch": per(t["vec_big_batch"], n_images),
            "vec_heuristic": per(tv["heuristic"], batch),
            "vec_rerank_tau_inf": per(tv["rerank_inf"], batch),
            "vec_rerank_tau_0.5": per(tv["rerank_0.5"], batch),
            "vec_phi": per(tv["phi"], phi_batch),
        },
        "spread": {**{k: v.spread for k, v in t.items()}, **{f"vec_{k}": v.spread for k, v in tv.items()}},
    }
    del loop, tables
    gc.collect()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, nargs="+", default=[1000, 10000, 21000])
    ap.add_argument("--images", type=int, default=2048, help="images for the vectorised version")
    ap.add_argument("--loop-images", type=int, nargs="+", default=[128, 64, 32],
                    help="images for the loop version, one per class count (last one repeats)")
    ap.add_argument("--batch", type=int, default=1024, help="vectorised batch size")
    ap.add_argument("--loop-batch", type=int, default=32, help="the release's test-loader batch size")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--loop-repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: least noisy on a shared machine)")
    ap.add_argument("--no-encoder", action="store_true", help="skip the ViT-B/32 reference timing")
    ap.add_argument("--encoder-batch", type=int, default=16)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)

    vit = None
    if not args.no_encoder:
        from bench_image_encoder import encoder_seconds_per_image

        vit = encoder_seconds_per_image("ViT-B-32", args.encoder_batch, repeats=3)
        print(f"ViT-B/32 image encoder: {fmt_time(vit['median_s'])} per image "
              f"(batch {args.encoder_batch}, spread {vit['spread']:.0%})", flush=True)

    results = []
    for i, C in enumerate(args.classes):
        n_loop = args.loop_images[min(i, len(args.loop_images) - 1)]
        print(f"{C} classes ...", flush=True)
        results.append(bench_classes(C, args.images, n_loop, args.batch, args.loop_batch,
                                     args.repeats, args.loop_repeats))

    if vit is not None and not args.no_encoder:  # second encoder reading: the load may have changed
        from bench_image_encoder import encoder_seconds_per_image

        vit2 = encoder_seconds_per_image("ViT-B-32", args.encoder_batch, repeats=3)
        vit["median_s_again"] = vit2["median_s"]
        print(f"ViT-B/32 again: {fmt_time(vit2['median_s'])} per image", flush=True)
    vit_s = min(vit["median_s"], vit["median_s_again"]) if vit else None

    rows = []
    for r in results:
        p, a, n = r["per_image_s"], r["agree"], r["loop_images"]
        rows.append([f"{r['classes']:,}", f"{r['general_texts']:,} / {r['contrast_texts']:,}",
                     fmt_time(p["loop_stage1"]), fmt_time(p["loop_rerank"]), fmt_time(p["loop_total"]),
                     fmt_time(p["vec_total_same_batch"]), fmt_time(p["vec_total_big_batch"]),
                     f"{p['loop_total'] / p['vec_total_same_batch']:.0f}x",
                     f"{p['loop_total'] / p['vec_total_big_batch']:.0f}x",
                     f"{a['stage1']}/{n}, {a['final_tau_inf']}/{n}, {a['final_tau_0.5']}/{n}"])
    print_table(f"CODER stage per image, τ = ∞ (every image reranked), CPU fp32, {args.threads} thread(s)",
                ["classes", "general / ovo texts", "loop stage 1", "loop rerank", "loop total",
                 f"vectorised (batch {args.loop_batch})", f"vectorised (batch {args.batch})",
                 f"speedup (b{args.loop_batch})", f"speedup (b{args.batch})",
                 "same predictions (stage 1, τ=∞, τ=0.5)"], rows)

    rows = []
    for r in results:
        p = r["per_image_s"]
        zs = p["vec_heuristic"] + p["vec_rerank_tau_inf"]
        pct = (lambda s: f"{100 * s / vit_s:.2f} %") if vit_s else (lambda s: "-")
        rows.append([f"{r['classes']:,}", fmt_time(p["vec_heuristic"]), fmt_time(p["vec_rerank_tau_inf"]),
                     f"{fmt_time(p['vec_rerank_tau_0.5'])} ({r['reranked_fraction_tau_0.5']:.0%})",
                     fmt_time(zs), pct(zs), fmt_time(p["vec_phi"]), pct(zs + p["vec_phi"])])
    vit_txt = f"ViT-B/32 = {fmt_time(vit_s)} / image" if vit_s else "no encoder timing"
    print_table(f"Vectorised CODER stage per image (batch {args.batch}), share of the image encoder ({vit_txt})",
                ["classes", "heuristic", "rerank τ=∞", "rerank τ=0.5 (reranked)", "zero-shot stage",
                 "% of ViT-B/32", "explicit φ", "% incl. φ"], rows)
    spread = max(max(r["spread"].values()) for r in results)
    print(f"\nlargest spread (max-min)/median over repeats: {spread:.0%}")
    write_json(args.json, {"machine": machine(), "threads": args.threads, "vit_b32": vit,
                           "coder_stage": results})


if __name__ == "__main__":
    main()
