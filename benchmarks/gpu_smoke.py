"""End-to-end check of the device paths on a CUDA GPU: `coderclip evaluate` with a random ViT-B-32
in fp16 and bf16 on generated image folders, and CPU-versus-GPU agreement of the scorer.

    PYTHONPATH=src python3 benchmarks/gpu_smoke.py OUT.json
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def main(out: str) -> int:
    from coderclip.classifier import CoderClassifier
    from coderclip.datasets import from_folder
    from coderclip.encoders import load_encoder
    from coderclip.evaluation.run import evaluate
    from coderclip.knowledge import load_knowledge

    results: dict = {"cuda": torch.cuda.is_available(),
                     "device_name": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    kn = load_knowledge("cifar10")
    root = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    for name in kn.class_names:
        d = root / name
        d.mkdir()
        for i in range(20):
            Image.fromarray(rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)).save(d / f"{i}.jpg")
    ds = from_folder(root)
    for precision in ("fp16", "bf16", "fp32"):
        t = time.perf_counter()
        enc = load_encoder("open_clip:ViT-B-32", device="cuda", precision=precision)
        rep = evaluate(enc, kn, ds, cache=False, num_workers=4)
        results[f"evaluate_{precision}"] = {
            "seconds": time.perf_counter() - t, "n_images": rep["n_images"],
            "methods": {m: v["top1"] for m, v in rep["methods"].items()},
            "reranked": rep["rerank"]["reranked"]}
    # scorer agreement: same embeddings and text bank, CPU fp32 vs GPU fp32/fp16
    torch.manual_seed(0)
    enc = load_encoder("open_clip:ViT-B-32", device="cuda", precision="fp32")
    x = torch.nn.functional.normalize(torch.randn(2048, enc.embed_dim), dim=1)
    gpu = CoderClassifier(enc, kn, tau=1.0).fit()
    preds_gpu = gpu.predict_index(embeddings=x)
    cpu_tables = gpu.tables_.to("cpu", torch.float32) if hasattr(gpu.tables_, "to") else None
    from coderclip.scoring import heuristic_scores, rerank_top_k

    if cpu_tables is not None:
        s = heuristic_scores(x, cpu_tables)
        preds_cpu = rerank_top_k(x, s, cpu_tables, top_k=5, tau=1.0).prediction.numpy()
        results["cpu_gpu_agreement_fp32"] = float((preds_cpu == preds_gpu).mean())
        h16 = gpu.tables_.to("cuda", torch.float16)
        s16 = heuristic_scores(x.cuda().half(), h16)
        p16 = rerank_top_k(x.cuda().half(), s16, h16, top_k=5, tau=1.0).prediction.cpu().numpy()
        results["cpu_gpu_agreement_fp16"] = float((preds_cpu == p16).mean())
    Path(out).write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
