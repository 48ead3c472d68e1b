"""Time and peak memory of fitting the few-shot adapters (cache build, validation affinities and
the α, β search) on an ImageNet-sized synthetic problem.

Default size: 1000 classes × 16 shots (16,000 support images), a text bank of 15,000 texts, 4
validation images per class, 512-d embeddings; then the prediction of 10,000 test images.

    python benchmarks/fewshot_search.py                    # CPU, CODER-Adapter and Tip-Adapter
    python benchmarks/fewshot_search.py --explicit         # also the uncompressed CODER keys
    python benchmarks/fewshot_search.py --device cuda      # on a GPU

Peak memory on CPU is the process's peak resident set (VmHWM, reset before each step), given
above the resident set before the step; on CUDA it is torch's peak allocated memory.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from coderclip.fewshot import CoderAdapter, SearchSpace, TipAdapter  # noqa: E402


def synthetic_problem(classes: int, shots: int, texts: int, val_per_class: int, test: int,
                      dim: int, device: torch.device, seed: int = 0) -> dict:
    """CLIP-like unit embeddings. Images and texts of a class share a prototype direction, images
    of a class also share a visual direction no text sees, and everything shares a common
    direction (image–text cosines around 0.3, as in CLIP). At the default size zero-shot top-1 is
    about 65 %, a nearest-class-mean over the support images about 66 %."""
    gens = [torch.Generator().manual_seed(seed * 100 + i) for i in range(5)]  # one per part
    g = gens[0]
    unit = torch.nn.functional.normalize
    proto = unit(torch.randn(classes, dim, generator=g), dim=1)
    visual = unit(torch.randn(classes, dim, generator=g), dim=1)
    common = unit(torch.randn(dim, generator=g), dim=0)

    def images(labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        noise = unit(torch.randn(len(labels), dim, generator=g), dim=1)
        return unit(0.18 * proto[labels] + 0.16 * visual[labels] + noise + 0.5 * common, dim=1)

    ys = torch.arange(classes).repeat_interleave(shots)
    yv = torch.arange(classes).repeat_interleave(val_per_class)
    yt = torch.randint(0, classes, (test,), generator=gens[3])
    text_class = torch.arange(texts) % classes
    text_noise = unit(torch.randn(texts, dim, generator=gens[4]), dim=1)
    axes = unit(0.5 * proto[text_class] + 0.8 * text_noise + 0.6 * common, dim=1)
    w = unit(torch.zeros(classes, dim).index_add_(0, text_class, axes), dim=1)
    put = {"device": device}
    return {"support": images(ys, gens[1]).to(**put), "support_labels": ys.to(**put),
            "val": images(yv, gens[2]).to(**put), "val_labels": yv.to(**put),
            "test": images(yt, gens[3]).to(**put),
            "test_labels": yt, "axes": axes.to(**put), "w": w.to(**put)}


class PeakMemory:
    """Peak memory of a block of work (CPU: resident set; CUDA: torch's allocator)."""

    def __init__(self, device: torch.device):
        self.device = device

    @staticmethod
    def _status(field: str) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                with open("/proc/self/clear_refs", "w") as f:
                    f.write("5")   # reset VmHWM to the current resident set
            except OSError:
                pass
            self.base = self._status("VmRSS")
        self.start, self.cpu_start = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self.peak = self._status("VmHWM")
        self.seconds = time.perf_counter() - self.start
        self.cpu_seconds = time.process_time() - self.cpu_start
        self.extra = max(0, self.peak - self.base)


def fmt_bytes(n: int) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--shots", type=int, default=16)
    p.add_argument("--texts", type=int, default=15000)
    p.add_argument("--val-per-class", type=int, default=4)
    p.add_argument("--test", type=int, default=10000, help="test images to predict afterwards")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--device", default="cpu")
    p.add_argument("--explicit", action="store_true",
                   help="also run CODER-Adapter with explicit (uncompressed) CODER keys")
    p.add_argument("--key-dtype", default="auto", help="auto, float32, float16 or bfloat16")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    data = synthetic_problem(args.classes, args.shots, args.texts, args.val_per_class, args.test,
                             args.dim, device)
    space = SearchSpace()
    print(f"problem: {args.classes} classes x {args.shots} shots = {args.classes * args.shots} "
          f"support images, {args.texts} texts, {args.classes * args.val_per_class} validation and "
          f"{args.test} test images, D = {args.dim}; grid {len(space.alphas)} x {len(space.betas)} "
          f"then {space.refine} x {space.refine}")
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch "
          f"threads, device {device}, torch {torch.__version__}")
    runs = [("Tip-Adapter", lambda: TipAdapter(data["w"], key_dtype=args.key_dtype)),
            ("CODER-Adapter", lambda: CoderAdapter(data["w"], data["axes"], key_dtype=args.key_dtype))]
    if args.explicit:
        runs.append(("CODER-Adapter (explicit keys)",
                     lambda: CoderAdapter(data["w"], data["axes"], compress=False, key_dtype=args.key_dtype)))
    results = []
    for name, make in runs:
        adapter = make()
        with PeakMemory(device) as fit:
            adapter.fit(data["support"], data["support_labels"], data["val"], data["val_labels"])
        with PeakMemory(device) as pred:
            acc = adapter.score(data["test"], data["test_labels"].numpy())
        row = {"method": name, "fit_seconds": fit.seconds, "fit_cpu_seconds": fit.cpu_seconds,
               "fit_peak_bytes": fit.peak,
               "fit_extra_bytes": fit.extra, "predict_seconds": pred.seconds,
               "predict_extra_bytes": pred.extra, "key_bytes": adapter.cache_.nbytes(),
               "key_dtype": str(adapter.cache_.keys.dtype).replace("torch.", ""),
               "timings": dict(adapter.timings_), "alpha": adapter.alpha_, "beta": adapter.beta_,
               "test_top1": 100 * acc}
        results.append(row)
        print(f"{name:<30} fit (keys + val affinities + search) {fit.seconds:7.1f} s "
              f"({fit.cpu_seconds:.1f} s CPU), peak "
              f"{fmt_bytes(fit.peak)} (+{fmt_bytes(fit.extra)}); keys {fmt_bytes(row['key_bytes'])} "
              f"{row['key_dtype']}; predict {args.test} images {pred.seconds:6.1f} s "
              f"(+{fmt_bytes(pred.extra)}); alpha={adapter.alpha_:.3g} beta={adapter.beta_:.3g} "
              f"test {100 * acc:.2f}%")
        print(" " * 31 + "fit steps: " + ", ".join(f"{k} {v:.1f} s" for k, v in adapter.timings_.items()))
        del adapter
    return results


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
