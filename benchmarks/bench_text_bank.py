"""Text-bank cost for an ImageNet-sized bank (1,000 classes x ~21 texts): encoding throughput cold
(open_clip ViT-B-32 text tower, random weights) with the full 77-token context and with the
batch cut to its longest text, and the time to get the whole bank from the on-disk cache.

Cold encoding of 21k texts takes hours on one CPU thread, so it runs on ``--sample`` texts drawn
evenly from the bank and the full-bank time is extrapolated from the throughput. The cache is
filled with random embeddings under the encoder's identity (what the embeddings hold does not
change how long loading them takes); then ``TextBank.build`` runs with every text a cache hit.

    PYTHONPATH=src python benchmarks/bench_text_bank.py [--sample 128] [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import copy
import logging
import tempfile
import time

import torch

from _common import Timing, fmt_time, imagenet_sized_knowledge, machine, measure, print_table, write_json
from coderclip.bank.cache import MAX_SHARDS, TextEmbeddingCache
from coderclip.bank.textbank import CODER_TYPES, TextBank, build_entries, knowledge_digest


def cold_throughput(encoder, texts: list[str], repeats: int, batch_size: int) -> dict:
    """Texts per second, trimmed and full context, interleaved; plus the max embedding difference."""
    full = copy.copy(encoder)
    full.trim_text = False
    runs: dict[str, list[float]] = {"trimmed": [], "full": []}
    for enc in (encoder, full):       # warm-up
        enc.encode_texts(texts[:8], batch_size=batch_size)
    out = {}
    for _ in range(repeats):
        for name, enc in (("trimmed", encoder), ("full", full)):
            t0 = time.perf_counter()
            out[name] = enc.encode_texts(texts, batch_size=batch_size)
            runs[name].append(time.perf_counter() - t0)
    res = {k: {**Timing(v).as_dict(per=len(texts)), "texts_per_s": len(texts) / Timing(v).median}
           for k, v in runs.items()}
    res["max_abs_difference"] = float((out["trimmed"] - out["full"]).abs().max())
    res["trim_in_use"] = bool(encoder.trim_text)
    return res


def tokens_per_text(encoder, texts: list[str]) -> float:
    tok = encoder.tokenizer(texts)
    return float((tok != 0).sum(dim=1).float().mean())


def cache_hit(knowledge, encoder, repeats: int, shards: int) -> dict:
    """Seconds for ``TextBank.build`` when every text is in the cache (spread over ``shards``)."""
    texts, _ = build_entries(knowledge, CODER_TYPES)
    with tempfile.TemporaryDirectory() as root:
        cache = TextEmbeddingCache(encoder.identity, root)
        g = torch.Generator().manual_seed(0)
        emb = torch.nn.functional.normalize(torch.randn(len(texts), encoder.embed_dim, generator=g), dim=1)
        step = (len(texts) + shards - 1) // shards
        for s in range(0, len(texts), step):
            cache.add(texts[s:s + step], emb[s:s + step])
        n_files = len(cache._shards())

        def build():
            return TextBank.build(knowledge, encoder, cache=cache)

        calls = {"n": 0}
        orig = encoder.encode_texts

        def counting(batch, **kw):
            calls["n"] += len(batch)
            return orig(batch, **kw)

        encoder.encode_texts = counting   # any encoding here would be a cache miss
        try:
            t = measure(build, repeats=repeats, warmup=1)
        finally:
            del encoder.encode_texts
        assert calls["n"] == 0, "cache miss during the cache-hit benchmark"
        parts = {
            "build_entries": measure(lambda: build_entries(knowledge, CODER_TYPES), repeats, 1).median,
            "cache_load": measure(lambda: cache.load(texts, encoder.embed_dim), repeats, 1).median,
            "knowledge_digest": measure(lambda: knowledge_digest(knowledge), repeats, 1).median,
        }
        bank = build()
        path = f"{root}/bank.safetensors"
        bank.save(path)
        load = measure(lambda: TextBank.load(path), repeats, 1)
    return {"texts": len(texts), "shard_files": n_files, **t.as_dict(), "parts_s": parts,
            "bank_file_load_s": load.median}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--classes", type=int, default=1000)
    ap.add_argument("--model", default="ViT-B-32")
    ap.add_argument("--sample", type=int, default=128, help="texts encoded cold (both paths)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=2, help="cold-encoding repeats")
    ap.add_argument("--cache-repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    logging.getLogger().setLevel(logging.ERROR)
    from coderclip.encoders.openclip import OpenClipEncoder

    kn = imagenet_sized_knowledge(args.classes)
    texts, _ = build_entries(kn, CODER_TYPES)
    enc = OpenClipEncoder(args.model, None, device="cpu", precision="fp32")
    step = max(1, len(texts) // args.sample)
    sample = texts[::step][:args.sample]
    cold = cold_throughput(enc, sample, args.repeats, args.batch_size)
    tok_sample, tok_all = tokens_per_text(enc, sample), tokens_per_text(enc, texts[::10])
    hit1 = cache_hit(kn, enc, args.cache_repeats, shards=1)
    hit16 = cache_hit(kn, enc, args.cache_repeats, shards=MAX_SHARDS)

    rows = []
    for name in ("full", "trimmed"):
        c = cold[name]
        rows.append([f"cold, {'77-token context' if name == 'full' else 'cut to longest in batch'}",
                     f"{c['texts_per_s']:.1f}", fmt_time(len(texts) / c["texts_per_s"]) + " (extrapolated)",
                     f"{c['spread']:.0%}"])
    for hit in (hit1, hit16):
        rows.append([f"cache hit, {hit['shard_files']} shard file(s)", f"{hit['texts'] / hit['median_s']:,.0f}",
                     fmt_time(hit["median_s"]), f"{hit['spread']:.0%}"])
    rows.append(["saved bank file (TextBank.load)", f"{hit1['texts'] / hit1['bank_file_load_s']:,.0f}",
                 fmt_time(hit1["bank_file_load_s"]), "-"])
    print_table(f"Text bank, {args.classes:,} classes, {len(texts):,} texts, open_clip {args.model} "
                f"(random weights), CPU fp32, {args.threads} thread(s)",
                ["path", "texts / s", "whole bank", "spread"], rows)
    print(f"\ncold sample: {len(sample)} texts, {tok_sample:.1f} tokens each on average "
          f"(bank: {tok_all:.1f}); trimmed vs full: max |difference| {cold['max_abs_difference']:.2e}; "
          f"speed-up {cold['full']['median_s'] / cold['trimmed']['median_s']:.2f}x")
    print("cache-hit breakdown (1 shard): " + ", ".join(f"{k} {fmt_time(v)}" for k, v in hit1["parts_s"].items()))
    write_json(args.json, {"machine": machine(), "threads": args.threads, "model": args.model,
                           "texts": len(texts), "cold": cold, "tokens_per_text_sample": tok_sample,
                           "tokens_per_text_bank": tok_all, "cache_hit_1_shard": hit1,
                           f"cache_hit_{MAX_SHARDS}_shards": hit16})


if __name__ == "__main__":
    main()
