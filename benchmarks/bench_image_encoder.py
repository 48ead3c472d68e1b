"""Image-encoder time per image for randomly initialised open_clip ViT-B-32 and ViT-L-14.

Speed does not depend on weight values, so random weights give honest figures. This is the floor
that the CODER stage is compared against (bench_coder_stage.py reports it as a percentage).

    PYTHONPATH=src python benchmarks/bench_image_encoder.py [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import logging

import torch

from _common import fmt_time, machine, measure, print_table, write_json

#: Forward-pass GFLOPs per 224 px image (multiply-adds x 2), for reading the tables.
GFLOPS = {"ViT-B-32": 4.4, "ViT-B-16": 17.6, "ViT-L-14": 81.1}


def build_model(arch: str, device: str = "cpu", dtype: torch.dtype = torch.float32):
    """A randomly initialised open_clip model in eval mode (``None`` if open_clip is missing)."""
    import open_clip

    logging.getLogger().setLevel(logging.ERROR)  # "no pretrained weights" warnings
    model = open_clip.create_model(arch, pretrained=None, device=device)
    return model.to(dtype=dtype).eval()


def encoder_seconds_per_image(arch: str, batch: int, repeats: int = 3, device: str = "cpu",
                              dtype: torch.dtype = torch.float32, model=None) -> dict:
    """Median seconds per image of ``encode_image`` on a batch of random pixels."""
    model = model if model is not None else build_model(arch, device, dtype)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else size
    pixels = torch.randn(batch, 3, size, size, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else None
    with torch.inference_mode():
        t = measure(lambda: model.encode_image(pixels), repeats=repeats, warmup=1, sync=sync)
    return {"arch": arch, "batch": batch, "dtype": str(dtype).replace("torch.", ""),
            **t.as_dict(per=batch)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["ViT-B-32", "ViT-L-14"])
    ap.add_argument("--batch", type=int, nargs="+", default=[16, 4], help="one per model")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: least noisy on a shared machine)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rows, results = [], []
    for arch, batch in zip(args.models, args.batch):
        r = encoder_seconds_per_image(arch, batch, args.repeats)
        results.append(r)
        gf = GFLOPS.get(arch)
        rate = f"{gf / r['median_s']:.1f}" if gf else "?"
        rows.append([arch, batch, fmt_time(r["median_s"]), f"{1 / r['median_s']:.2f}",
                     f"{r['spread']:.0%}", rate])
    print_table(f"Image encoder, CPU fp32, {args.threads} thread(s), random weights",
                ["model", "batch", "time / image", "images / s", "spread", "GFLOP/s"], rows)
    write_json(args.json, {"machine": machine(), "image_encoder": results})


if __name__ == "__main__":
    main()
