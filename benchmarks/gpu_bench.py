"""All coderclip performance measurements on one NVIDIA GPU, at large batch sizes in fp16/bf16,
written to one JSON file (and printed as Markdown tables for docs/performance.md).

    PYTHONPATH=src python3 benchmarks/gpu_bench.py OUT.json            # on the GPU machine
    PYTHONPATH=src python benchmarks/gpu_bench.py OUT.json --smoke     # tiny sizes, CPU is fine

Sections (each one is skipped with a message, never fatal, when something it needs is missing):

* ``image_encoder``: open_clip ViT-B-32 and ViT-L-14, random weights, fp16 and bf16 (falls back
  to timm's CLIP-architecture ViTs when open_clip is not installed).
* ``coder_stage``: heuristic + rerank (and the explicit CODER vectors φ) per image for synthetic
  banks of 1k / 10k / 21k classes, vectorised in fp16 / bf16 / fp32, against the authors' loop
  structure (tests.reference.ReleaseLoopScorer, fp32, one-vs-one texts kept on the CPU and
  moved per pair as in the release) on a subset of images; same-prediction checks; the stage as a
  share of ViT-B/32 fp16 image-encoding time.
* ``text_encoding``: an ImageNet-sized bank (1k classes, ~21k texts) through open_clip ViT-B-32's
  text tower in fp16, full 77-token context versus cut to the longest text in the batch.
* ``text_cache``: ``TextBank.build`` for that bank when every text is in the on-disk cache.
* ``memory``: a 50,000-image zero-shot evaluation (``predict_zero_shot`` + ``score_zero_shot``)
  with the ImageNet-sized bank: GPU peak memory and time.

Timing: wall clock around each call with ``torch.cuda.synchronize()`` (so launch overheads and
host work count), one warm-up call, median of repeats. A time budget (``--budget-s``) skips what
would not fit. The JSON is rewritten after every section, so a cut-off run still leaves results.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import gc
import json
import logging
import sys
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (SyntheticSpec, Timing, fmt_time, imagenet_sized_knowledge, machine,  # noqa: E402
                     print_table, synthetic_bank, synthetic_images)

INF = float("inf")
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
TINY_CLIP = {  # --smoke: a tiny open_clip CLIP (random weights) instead of ViT-B-32 / ViT-L-14
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@dataclasses.dataclass
class Sizes:
    classes: tuple[int, ...]
    images: int
    batch: int
    loop_images: tuple[int, ...]
    loop_batch: int
    repeats: int
    loop_repeats: int
    encoders: tuple[tuple[str, int], ...]   # (model, batch)
    encoder_dtypes: tuple[str, ...]
    stage_dtypes: tuple[str, ...]
    text_classes: int
    text_batch: int
    eval_images: int
    eval_classes: int
    eval_batch: int


FULL = Sizes(classes=(1000, 10000, 21000), images=16384, batch=4096, loop_images=(64, 32, 32),
             loop_batch=32, repeats=5, loop_repeats=3,
             encoders=(("ViT-B-32", 1024), ("ViT-L-14", 256)), encoder_dtypes=("fp16", "bf16"),
             stage_dtypes=("fp16", "bf16", "fp32"), text_classes=1000, text_batch=1024,
             eval_images=50_000, eval_classes=1000, eval_batch=8192)
SMOKE = Sizes(classes=(50, 300), images=256, batch=128, loop_images=(32, 16), loop_batch=32,
              repeats=2, loop_repeats=1, encoders=(("tiny", 8),), encoder_dtypes=("fp32", "bf16"),
              stage_dtypes=("fp32", "bf16"), text_classes=10, text_batch=64,
              eval_images=2000, eval_classes=50, eval_batch=512)


class Bench:
    def __init__(self, out: Path, device: torch.device, sizes: Sizes, smoke: bool, budget_s: float):
        self.out, self.device, self.sizes, self.smoke = out, device, sizes, smoke
        self.t0, self.budget_s = time.perf_counter(), budget_s
        self.results: dict = {"format": "coderclip-gpu-bench-1", "machine": machine(), "smoke": smoke,
                              "device": str(device), "sections": {}, "messages": []}
        if device.type == "cuda":
            p = torch.cuda.get_device_properties(device)
            self.results["gpu"] = {"name": p.name, "memory_bytes": p.total_memory,
                                   "multiprocessors": p.multi_processor_count,
                                   "capability": f"{p.major}.{p.minor}",
                                   "cuda": torch.version.cuda}

    # ------------------------------------------------------------------ helpers
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.budget_s - self.elapsed()

    def say(self, msg: str) -> None:
        print(f"[{self.elapsed():6.1f} s] {msg}", flush=True)
        self.results["messages"].append(f"{self.elapsed():.1f}s {msg}")

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def time(self, fn, repeats: int, warmup: int = 1) -> Timing:
        for _ in range(warmup):
            fn()
        self.sync()
        runs = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            self.sync()
            runs.append(time.perf_counter() - t)
        return Timing(runs)

    def save(self) -> None:
        self.results["elapsed_s"] = self.elapsed()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.results, indent=2, default=str) + "\n")

    def section(self, name: str, fn, min_left_s: float = 0.0) -> None:
        if self.left() < min_left_s:
            self.results["sections"][name] = {"skipped": f"time budget: {self.left():.0f} s left"}
            self.say(f"SKIP {name}: only {self.left():.0f} s of the budget left")
            self.save()
            return
        self.say(f"== {name}")
        try:
            self.results["sections"][name] = fn()
        except SkipSection as e:
            self.results["sections"][name] = {"skipped": str(e)}
            self.say(f"SKIP {name}: {e}")
        except Exception as e:  # one broken section must not lose the others
            self.results["sections"][name] = {"error": f"{type(e).__name__}: {e}",
                                              "traceback": traceback.format_exc()}
            self.say(f"ERROR in {name}: {type(e).__name__}: {e}")
        finally:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        self.save()

    # ------------------------------------------------------------------ image encoder
    def build_visual(self, arch: str):
        """(fp32 CPU model, encode function name, image size, backend name), random weights."""
        try:
            import open_clip
        except ImportError:
            open_clip = None
        if open_clip is not None:
            if arch == "tiny":
                model = open_clip.model.CLIP(**copy.deepcopy(TINY_CLIP))
            else:
                model = open_clip.create_model(arch, pretrained=None)
            model = model.visual.eval()   # the image tower only: what encode_image runs
            size = model.image_size
            return model, (size[0] if isinstance(size, (tuple, list)) else size), "open_clip"
        try:
            import timm
        except ImportError:
            raise SkipSection("neither open_clip nor timm is installed") from None
        names = {"ViT-B-32": ("vit_base_patch32_clip_224", 512), "ViT-L-14": ("vit_large_patch14_clip_224", 768),
                 "tiny": ("vit_tiny_patch16_224", 64)}
        name, dim = names[arch]
        return timm.create_model(name, pretrained=False, num_classes=dim).eval(), 224, f"timm:{name}"

    def image_encoder(self) -> dict:
        out = {}
        for arch, batch in self.sizes.encoders:
            master, size, backend = self.build_visual(arch)
            for dname in self.sizes.encoder_dtypes:
                dtype = DTYPES[dname]
                if self.device.type == "cpu" and dtype == torch.float16:
                    continue
                model = copy.deepcopy(master).to(self.device, dtype)
                pixels = torch.randn(batch, 3, size, size, device=self.device, dtype=dtype)
                with torch.inference_mode():
                    t = self.time(lambda: model(pixels), repeats=self.sizes.repeats, warmup=2)
                key = f"{arch}/{dname}"
                out[key] = {"arch": arch, "dtype": dname, "batch": batch, "backend": backend,
                            **t.as_dict(per=batch), "images_per_s": batch / t.median}
                self.say(f"{key} ({backend}): {fmt_time(t.median / batch)} per image, "
                         f"{batch / t.median:,.0f} images/s")
                del model, pixels
                gc.collect()
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
            del master
        return out

    def vit_b32_seconds(self) -> float | None:
        enc = self.results["sections"].get("image_encoder", {})
        arch = self.sizes.encoders[0][0]
        for d in ("fp16", "bf16", "fp32"):
            r = enc.get(f"{arch}/{d}")
            if isinstance(r, dict) and "median_s" in r:
                return r["median_s"]
        return None

    # ------------------------------------------------------------------ CODER stage
    def coder_stage(self) -> dict:
        from bench_coder_stage import IMAGE_NOISE, vectorised_predict
        from tests.reference import ReleaseLoopScorer
        from coderclip.scoring import CoderTables, coder_vectors, heuristic_scores, rerank_top_k

        s = self.sizes
        out = {}
        for i, C in enumerate(s.classes):
            if i > 0 and self.left() < 60 + 10 * C / 1000:
                out[str(C)] = {"skipped": f"time budget: {self.left():.0f} s left"}
                self.say(f"skip {C} classes (budget)")
                continue
            t_setup = time.perf_counter()
            spec = SyntheticSpec(C, image_noise=IMAGE_NOISE)
            bank = synthetic_bank(spec)
            base = CoderTables.from_bank(bank)
            loop = ReleaseLoopScorer(bank, device=self.device)
            x_cpu, y = synthetic_images(spec, s.images)
            n_loop = s.loop_images[min(i, len(s.loop_images) - 1)]
            setup = time.perf_counter() - t_setup
            res = {"classes": C, "general_texts": int(base.general_emb.shape[0]),
                   "contrast_entries": bank.count("contrast"), "images": s.images, "batch": s.batch,
                   "loop_images": n_loop, "loop_batch": s.loop_batch, "setup_s": setup, "dtypes": {}}
            del bank
            gc.collect()
            self.say(f"{C} classes: banks ready in {setup:.1f} s")

            # the loop version, fp32 (its stage 1 runs in fp32 in the release too)
            x32 = x_cpu.to(self.device)
            xl = x32[:n_loop]
            with torch.inference_mode():
                tl = self.time(lambda: loop.predict(xl, top_k=5, tau=INF, batch_size=s.loop_batch),
                               repeats=s.loop_repeats)
                xb0 = xl[:s.loop_batch]
                sb0 = loop.heuristic_scores(xb0)
                t_l1 = self.time(lambda: loop.heuristic_scores(xb0), repeats=s.loop_repeats)
                t_lr = self.time(lambda: loop.rerank(xb0, sb0, 5, INF), repeats=s.loop_repeats)
                p_loop = {tau: loop.predict(xl, top_k=5, tau=tau, batch_size=s.loop_batch).cpu()
                          for tau in (INF, 0.5)}
                s1_loop = torch.cat([loop.heuristic_scores(xl[j:j + s.loop_batch]).argmax(1).cpu()
                                     for j in range(0, n_loop, s.loop_batch)])
            res["loop"] = {"total": tl.as_dict(per=n_loop), "stage1": t_l1.as_dict(per=len(xb0)),
                           "rerank": t_lr.as_dict(per=len(xb0))}
            self.say(f"  loop: {fmt_time(tl.median / n_loop)} per image")
            del loop
            gc.collect()

            preds32 = None
            for dname in s.stage_dtypes:
                dtype = DTYPES[dname]
                tables = base.to(self.device, dtype)
                x = x32.to(dtype)
                xb = x[:s.batch]
                with torch.inference_mode():
                    sb = heuristic_scores(xb, tables)
                    phi_batch = max(1, min(s.batch, (1 << 30) // (2 * tables.general_emb.shape[0])))
                    t_tot = self.time(lambda: vectorised_predict(x, tables, INF, s.batch), repeats=s.repeats)
                    t_same = self.time(lambda: vectorised_predict(x[:n_loop], tables, INF, s.loop_batch),
                                       repeats=s.repeats)
                    t_h = self.time(lambda: heuristic_scores(xb, tables), repeats=s.repeats)
                    t_r = self.time(lambda: rerank_top_k(xb, sb, tables, top_k=5, tau=INF), repeats=s.repeats)
                    t_r5 = self.time(lambda: rerank_top_k(xb, sb, tables, top_k=5, tau=0.5), repeats=s.repeats)
                    t_phi = self.time(lambda: coder_vectors(x[:phi_batch], tables), repeats=s.repeats)
                    pred = vectorised_predict(x, tables, INF, s.batch).cpu()
                    s1 = torch.cat([heuristic_scores(x[j:j + s.batch], tables).argmax(1).cpu()
                                    for j in range(0, n_loop, s.batch)])[:n_loop]
                    agree = {"stage1": int((s1 == s1_loop).sum())}
                    for tau in (INF, 0.5):
                        pv = vectorised_predict(x[:n_loop], tables, tau, s.batch).cpu()
                        agree[f"final_tau_{tau}"] = int((pv == p_loop[tau]).sum())
                    sc = heuristic_scores(x, tables)
                    rr = rerank_top_k(x, sc, tables, top_k=5, tau=0.5)
                    reranked = float(rr.reranked.float().mean())
                    acc1 = float((rr.candidates[:, 0].cpu() == y).float().mean())
                if dname == "fp32":
                    preds32 = pred
                d = {"per_image_s": {
                        "total_big_batch": t_tot.median / s.images, "total_loop_batch": t_same.median / n_loop,
                        "heuristic": t_h.median / len(xb), "rerank_tau_inf": t_r.median / len(xb),
                        "rerank_tau_0.5": t_r5.median / len(xb), "phi": t_phi.median / phi_batch},
                     "spread": {"total": t_tot.spread, "heuristic": t_h.spread, "rerank": t_r.spread},
                     "phi_batch": phi_batch, "agree_with_loop": agree, "reranked_fraction_tau_0.5": reranked,
                     "stage1_accuracy": acc1,
                     "speedup_vs_loop": {"big_batch": (tl.median / n_loop) / (t_tot.median / s.images),
                                         "loop_batch": (tl.median / n_loop) / (t_same.median / n_loop)},
                     "_pred": pred}
                res["dtypes"][dname] = d
                self.say(f"  {dname}: {fmt_time(t_tot.median / s.images)} per image "
                         f"(heuristic {fmt_time(t_h.median / len(xb))}, rerank {fmt_time(t_r.median / len(xb))}), "
                         f"{d['speedup_vs_loop']['big_batch']:.0f}x the loop; same predictions "
                         f"{agree['final_tau_inf']}/{n_loop}")
                del tables, x, xb, sb, sc, rr
                gc.collect()
            for dname, d in res["dtypes"].items():
                pred = d.pop("_pred")
                if preds32 is not None:
                    d["same_final_as_fp32"] = int((pred == preds32).sum())
            out[str(C)] = res
            del base, x32
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
        vit = self.vit_b32_seconds()
        if vit:
            for r in out.values():
                for d in r.get("dtypes", {}).values():
                    p = d["per_image_s"]
                    d["percent_of_vit_b32"] = 100 * (p["heuristic"] + p["rerank_tau_inf"]) / vit
                    d["percent_of_vit_b32_incl_phi"] = 100 * (p["heuristic"] + p["rerank_tau_inf"] + p["phi"]) / vit
        return out

    # ------------------------------------------------------------------ text encoding and cache
    def text_encoder(self):
        try:
            import open_clip  # noqa: F401
        except ImportError:
            raise SkipSection("open_clip is not installed (carry it: see docs/performance.md)") from None
        from coderclip.encoders.openclip import OpenClipEncoder

        dname = "fp16" if self.device.type == "cuda" else "fp32"
        if self.smoke:
            import open_clip

            folder = self.out.parent / "tiny_open_clip"
            folder.mkdir(parents=True, exist_ok=True)
            cfg = folder / "coderclip-gpu-bench-tiny.json"
            cfg.write_text(json.dumps(TINY_CLIP))
            open_clip.add_model_config(cfg)
            return OpenClipEncoder("coderclip-gpu-bench-tiny", None, device=str(self.device), precision=dname), dname
        return OpenClipEncoder("ViT-B-32", None, device=str(self.device), precision=dname), dname

    def text_encoding(self) -> dict:
        from coderclip.bank.textbank import CODER_TYPES, build_entries

        enc, dname = self.text_encoder()
        texts, _ = build_entries(imagenet_sized_knowledge(self.sizes.text_classes), CODER_TYPES)
        full = copy.copy(enc)
        full.trim_text = False
        res = {"texts": len(texts), "dtype": dname, "batch_size": self.sizes.text_batch, "model": enc.name,
               "trim_in_use": bool(enc.trim_text)}
        outs = {}
        for name, e in (("trimmed", enc), ("full", full)):
            t = self.time(lambda: outs.__setitem__(name, e.encode_texts(texts, batch_size=self.sizes.text_batch)),
                          repeats=2 if not self.smoke else 1)
            res[name] = {**t.as_dict(per=len(texts)), "texts_per_s": len(texts) / t.median,
                         "bank_s": t.median}
            self.say(f"text encoding {name}: {len(texts) / t.median:,.0f} texts/s ({fmt_time(t.median)} for the bank)")
        diff = (outs["trimmed"] - outs["full"]).abs().max()
        cos = torch.nn.functional.cosine_similarity(outs["trimmed"], outs["full"], dim=1).min()
        res["max_abs_difference"] = float(diff)
        res["min_cosine"] = float(cos)
        res["speedup"] = res["full"]["median_s"] / res["trimmed"]["median_s"]
        tok = enc.tokenizer(texts[::10])
        res["tokens_per_text"] = float((tok != 0).sum(dim=1).float().mean())
        self._text_encoder = enc
        return res

    def text_cache(self) -> dict:
        from bench_text_bank import cache_hit

        from _common import RandomTextEncoder

        enc = getattr(self, "_text_encoder", None) or RandomTextEncoder(512)
        kn = imagenet_sized_knowledge(self.sizes.text_classes)
        hit = cache_hit(kn, enc, repeats=5, shards=1)
        self.say(f"cache hit: {fmt_time(hit['median_s'])} for {hit['texts']:,} texts")
        return hit

    # ------------------------------------------------------------------ memory
    def memory(self) -> dict:
        import numpy as np

        from _common import RandomTextEncoder
        from coderclip.evaluation.predict import predict_zero_shot
        from coderclip.evaluation.metrics import score_zero_shot
        from coderclip.bank.textbank import TEXT_TYPES, TextBank

        s = self.sizes
        bank = TextBank.build(imagenet_sized_knowledge(s.eval_classes), RandomTextEncoder(512),
                              types=TEXT_TYPES, cache=False)
        dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        g = torch.Generator().manual_seed(0)
        x = torch.nn.functional.normalize(torch.randn(s.eval_images, 512, generator=g), dim=1)
        x = x.to(self.device, dtype)
        labels = np.random.default_rng(0).integers(0, bank.n_classes, s.eval_images)
        res = {"images": s.eval_images, "classes": s.eval_classes, "texts": len(bank.texts),
               "dtype": str(dtype).replace("torch.", ""), "batch_size": s.eval_batch}
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        preds = predict_zero_shot(x, bank, batch_size=s.eval_batch)
        self.sync()
        t1 = time.perf_counter()
        score_zero_shot(preds, labels, bank.class_names)
        t2 = time.perf_counter()
        res.update(predict_s=t1 - t0, score_s=t2 - t1)
        if self.device.type == "cuda":
            res.update(gpu_before_bytes=before, gpu_peak_bytes=torch.cuda.max_memory_allocated(),
                       gpu_extra_bytes=torch.cuda.max_memory_allocated() - before)
            self.say(f"evaluation of {s.eval_images:,} images: {t1 - t0:.1f} s + {t2 - t1:.1f} s, "
                     f"GPU peak {res['gpu_extra_bytes'] / 2**20:,.0f} MB above the {before / 2**20:,.0f} MB before")
        else:
            self.say(f"evaluation of {s.eval_images:,} images: {t1 - t0:.1f} s + {t2 - t1:.1f} s")
        return res

    # ------------------------------------------------------------------ summary
    def summary(self) -> None:
        sec = self.results["sections"]
        enc = sec.get("image_encoder", {})
        if enc and "skipped" not in enc and "error" not in enc:
            print_table("Image encoder (random weights)", ["model", "dtype", "batch", "time / image", "images / s"],
                        [[r["arch"], r["dtype"], r["batch"], fmt_time(r["median_s"]), f"{r['images_per_s']:,.0f}"]
                         for r in enc.values()])
        cs = sec.get("coder_stage", {})
        rows = []
        for r in cs.values() if isinstance(cs, dict) and "skipped" not in cs and "error" not in cs else []:
            if "dtypes" not in r:
                continue
            lp = r["loop"]["total"]["median_s"]
            for dname, d in r["dtypes"].items():
                p, a, n = d["per_image_s"], d["agree_with_loop"], r["loop_images"]
                rows.append([f"{r['classes']:,}", dname, fmt_time(lp), fmt_time(p["total_loop_batch"]),
                             fmt_time(p["total_big_batch"]), f"{d['speedup_vs_loop']['loop_batch']:.0f}x",
                             f"{d['speedup_vs_loop']['big_batch']:.0f}x", fmt_time(p["heuristic"]),
                             fmt_time(p["rerank_tau_inf"]), fmt_time(p["phi"]),
                             f"{d.get('percent_of_vit_b32', float('nan')):.2f} %",
                             f"{d.get('percent_of_vit_b32_incl_phi', float('nan')):.2f} %",
                             f"{a['stage1']}/{n}, {a['final_tau_inf']}/{n}, {a['final_tau_0.5']}/{n}"])
        if rows:
            print_table(f"CODER stage per image on {self.results.get('gpu', {}).get('name', self.device)} "
                        "(τ = ∞: every image reranked; loop = release structure, fp32)",
                        ["classes", "dtype", "loop", f"vectorised (b{self.sizes.loop_batch})",
                         f"vectorised (b{self.sizes.batch})", f"speedup (b{self.sizes.loop_batch})",
                         f"speedup (b{self.sizes.batch})", "heuristic", "rerank", "explicit φ",
                         f"% of {self.sizes.encoders[0][0]}", "% incl. φ",
                         "same predictions as loop (stage 1, τ=∞, τ=0.5)"], rows)
        te = sec.get("text_encoding", {})
        if "trimmed" in te:
            print_table(f"Text encoding, {te['texts']:,} texts, {te['model']} text tower {te['dtype']}",
                        ["path", "texts / s", "whole bank"],
                        [["full 77-token context", f"{te['full']['texts_per_s']:,.0f}", fmt_time(te["full"]["bank_s"])],
                         ["cut to longest in batch", f"{te['trimmed']['texts_per_s']:,.0f}",
                          fmt_time(te["trimmed"]["bank_s"])]])
            print(f"speed-up {te['speedup']:.2f}x; max |difference| {te['max_abs_difference']:.2e}, "
                  f"min cosine {te['min_cosine']:.6f}")
        tc = sec.get("text_cache", {})
        if "median_s" in tc:
            print(f"\ntext-bank cache hit: {fmt_time(tc['median_s'])} for {tc['texts']:,} texts")
        mem = sec.get("memory", {})
        if "predict_s" in mem:
            extra = f", GPU peak +{mem['gpu_extra_bytes'] / 2**20:,.0f} MB" if "gpu_extra_bytes" in mem else ""
            print(f"evaluation of {mem['images']:,} images: predict {mem['predict_s']:.1f} s, "
                  f"score {mem['score_s']:.1f} s{extra}")
        print(f"\ntotal {self.elapsed():.0f} s")


class SkipSection(Exception):
    """A section cannot run here (a package or the device is missing)."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", help="path of the JSON file to write")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes (runs on CPU in about a minute)")
    ap.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    ap.add_argument("--sections", nargs="+",
                    default=["image_encoder", "coder_stage", "text_encoding", "text_cache", "memory"])
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="skip what would not fit in this many seconds (default 7 minutes)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("root").setLevel(logging.ERROR)   # open_clip: "no pretrained weights loaded"
    torch.manual_seed(0)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("CUDA was requested but torch.cuda.is_available() is False")
    if device.type != "cuda" and not args.smoke:
        print("note: no GPU: running the full sizes on the CPU will take very long; use --smoke", flush=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False   # fp32 means fp32 in the tables
    b = Bench(Path(args.out), device, SMOKE if args.smoke else FULL, args.smoke, args.budget_s)
    b.say(f"device {device}{' ' + b.results['gpu']['name'] if 'gpu' in b.results else ''}, "
          f"torch {torch.__version__}, sections {args.sections}")
    try:
        import open_clip
        b.results["open_clip"] = open_clip.__version__
    except ImportError:
        b.results["open_clip"] = None
        b.say("open_clip is not installed: image encoders fall back to timm, text encoding is skipped")
    budget_floor = {"image_encoder": 0, "coder_stage": 60, "text_encoding": 30, "text_cache": 15, "memory": 20}
    for name in args.sections:
        b.section(name, getattr(b, name), min_left_s=budget_floor.get(name, 0))
    b.summary()
    b.save()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
