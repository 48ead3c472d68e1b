"""End-to-end images per second on one GPU, JPEG decoding included: ``coderclip evaluate`` versus a
plain open_clip loop (and CLIP_benchmark's zero-shot loop when it is importable), fp16, random-weight
ViT-B/32 and ViT-L/14, on a folder of JPEG files the script generates.

    # on the GPU machine, carrying build/gpu_deps (made by benchmarks/prepare_gpu_deps.sh):
    PYTHONPATH=src:build/gpu_deps python3 benchmarks/gpu_e2e.py --out "$OUT/gpu_e2e.json"
    # anywhere, tiny model and a few images on the CPU (the test suite runs this):
    PYTHONPATH=src python benchmarks/gpu_e2e.py --smoke --out out/gpu_e2e_smoke.json

Per model, each timed over the whole folder after a warm-up pass on a few batches:

* ``plain``: the loop users write: ``create_model_and_transforms(precision="fp16")``, a
  ``DataLoader`` decoding with PIL in worker processes (pinned memory), ``encode_image``, argmax
  against the class prompts. ``plain_unpinned``: the same without pinned memory.
* ``coderclip``: ``coderclip.evaluate`` (all four methods, ablations, τ and K sweeps; the text bank
  comes from the warm cache), CPU decoding in workers. ``coderclip_device_decode``: the same with
  JPEG decoding and preprocessing on the GPU (``decode="device"``).
* ``clip_benchmark``: CLIP_benchmark's zero-shot loop (``zero_shot_classifier`` then
  ``run_classification`` from ``clip_benchmark.metrics.zeroshot_classification``, i.e. its
  ``evaluate`` without the final metrics) on a torchvision ``ImageFolder``, fp32 weights with
  autocast as its CLI runs them, if it can be imported.
* ``encoder_only``: ``encode_image`` on a batch already on the GPU: the ceiling.
* ``decode_agreement``: embeddings of the same images through CPU and GPU decoding.

The JSON is rewritten after every section, so a run cut short still leaves its results. A time
budget (``--budget-s``) skips what would not fit.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

TINY_ARCH = "coderclip-e2e-tiny"
TINY_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


# ---------------------------------------------------------------------- inputs
def _write_jpeg(args: tuple[str, int, int, int]) -> None:
    import numpy as np
    from PIL import Image

    path, w, h, seed = args
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8))
    img = np.asarray(coarse.resize((w, h), Image.BICUBIC), dtype=np.int16)
    img = np.clip(img + rng.integers(-12, 13, img.shape), 0, 255).astype(np.uint8)  # some texture
    Image.fromarray(img).save(path, quality=90)


def make_jpeg_folder(root: Path, classes: list[str], n: int, size: tuple[int, int], workers: int) -> Path:
    """``n`` JPEG files (smooth random content plus fine noise, quality 90) in one sub-folder per
    class; reused when it is already there."""
    done = root / f".done-{n}-{size[0]}x{size[1]}"
    if done.is_file():
        return root
    jobs = []
    for i in range(n):
        d = root / classes[i % len(classes)]
        d.mkdir(parents=True, exist_ok=True)
        jobs.append((str(d / f"{i:07d}.jpg"), size[0], size[1], i))
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            pool.map(_write_jpeg, jobs, chunksize=64)
    else:
        for j in jobs:
            _write_jpeg(j)
    done.write_text("ok\n")
    return root


def make_checkpoint(arch: str, path: Path) -> Path:
    """Random open_clip weights for ``arch`` saved as safetensors (timing does not depend on them)."""
    if path.is_file():
        return path
    import open_clip
    from safetensors.torch import save_file

    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in open_clip.create_model(arch).state_dict().items()}
    save_file(state, str(path))
    return path


# ---------------------------------------------------------------------- helpers
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn, device: torch.device) -> tuple[float, object]:
    _sync(device)
    t = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t, out


class _Files(torch.utils.data.Dataset):
    """(pixels, label) with PIL decoding, as a plain loop does it."""

    def __init__(self, items, preprocess):
        self.items, self.preprocess = items, preprocess

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        from PIL import Image

        path, label = self.items[i]
        with Image.open(path) as im:
            return self.preprocess(im.convert("RGB")), label


def plain_loop(arch: str, ckpt: str, items, classes, cfg, pin: bool) -> dict:
    """The 20-line open_clip loop: model in fp16, DataLoader workers decoding with PIL."""
    import open_clip

    device = cfg.device
    model, _, preprocess = open_clip.create_model_and_transforms(
        arch, pretrained=ckpt, precision=cfg.precision, device=device)
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    dtype = cfg.dtype
    with torch.inference_mode():
        text = model.encode_text(tokenizer([f"a photo of a {c}." for c in classes]).to(device))
        text = torch.nn.functional.normalize(text.float(), dim=-1)

    def run(subset):
        loader = torch.utils.data.DataLoader(_Files(subset, preprocess), batch_size=cfg.batch,
                                             num_workers=cfg.workers, pin_memory=pin)
        preds = []
        with torch.inference_mode():
            for x, _ in loader:
                f = model.encode_image(x.to(device, dtype, non_blocking=True))
                preds.append((torch.nn.functional.normalize(f.float(), dim=-1) @ text.T).argmax(1).cpu())
        return torch.cat(preds)

    run(items[: cfg.batch * 2])  # warm-up
    seconds, preds = _timed(lambda: run(items), device)
    return {"seconds": seconds, "images": len(items), "images_per_s": len(items) / seconds}


def coderclip_run(spec: str, folder: Path, cfg, decode: str) -> dict:
    """``coderclip.evaluate`` over the folder (text bank from the warm cache)."""
    from coderclip.datasets import from_folder
    from coderclip.encoders import load_encoder
    from coderclip.evaluation import evaluate
    from coderclip.knowledge import load_knowledge

    load_s, encoder = _timed(lambda: load_encoder(spec, device=str(cfg.device),
                                                  precision=cfg.precision_name), cfg.device)
    kn = load_knowledge("cifar10")
    ds = from_folder(folder)
    k = min(len(ds), cfg.batch * 2)
    small = dataclasses.replace(ds, paths=ds.paths[:k], _labels=ds.labels()[:k])
    evaluate(encoder, kn, small, batch_size=cfg.batch, num_workers=cfg.workers, decode=decode)  # warm
    seconds, report = _timed(lambda: evaluate(encoder, kn, ds, batch_size=cfg.batch,
                                              num_workers=cfg.workers, decode=decode), cfg.device)
    n = report["n_images"]
    return {"seconds": seconds, "images": n, "images_per_s": n / seconds, "load_s": load_s,
            "decode": decode}


def clip_benchmark_run(arch: str, ckpt: str, folder: Path, classes, cfg) -> dict:
    """CLIP_benchmark's zero-shot classification loop on a torchvision ImageFolder."""
    import open_clip
    import torchvision
    from clip_benchmark.metrics import zeroshot_classification as zc

    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=ckpt, device=cfg.device)
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    ds = torchvision.datasets.ImageFolder(str(folder), transform=preprocess)
    names = [c.replace("_", " ") for c in ds.classes]

    def run(dataset):  # the two steps of zc.evaluate (its metrics break on NumPy 2.4: not timed)
        loader = torch.utils.data.DataLoader(dataset, batch_size=cfg.batch, num_workers=cfg.workers)
        amp = cfg.device.type == "cuda"
        classifier = zc.zero_shot_classifier(model, tokenizer, names, ["a photo of a {c}."],
                                             str(cfg.device), amp=amp)
        return zc.run_classification(model, classifier, loader, str(cfg.device), amp=amp)

    run(torch.utils.data.Subset(ds, range(min(len(ds), cfg.batch * 2))))
    seconds, _ = _timed(lambda: run(ds), cfg.device)
    return {"seconds": seconds, "images": len(ds), "images_per_s": len(ds) / seconds}


def encoder_only(arch: str, ckpt: str, cfg) -> dict:
    import open_clip

    model, _, _ = open_clip.create_model_and_transforms(arch, pretrained=ckpt, precision=cfg.precision,
                                                        device=cfg.device)
    size = model.visual.image_size
    size = size if isinstance(size, tuple) else (size, size)
    x = torch.randn(cfg.batch, 3, *size, device=cfg.device).to(cfg.dtype)
    with torch.inference_mode():
        model.encode_image(x)
        reps = 3 if cfg.smoke else 10
        seconds, _ = _timed(lambda: [model.encode_image(x) for _ in range(reps)], cfg.device)
    return {"seconds": seconds, "images": cfg.batch * reps, "images_per_s": cfg.batch * reps / seconds}


def decode_agreement(spec: str, paths, cfg) -> dict:
    """CPU (PIL) versus device (nvJPEG + torch resize) decoding of the same images."""
    from coderclip.encoders import load_encoder
    from coderclip.images import encode_image_files

    enc = load_encoder(spec, device=str(cfg.device), precision=cfg.precision_name)
    a = encode_image_files(enc, paths, batch_size=cfg.batch, num_workers=0).embeddings
    b = encode_image_files(enc, paths, batch_size=cfg.batch, num_workers=0, decode="device").embeddings
    cos = (a * b).sum(-1)
    return {"images": len(paths), "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
            "max_abs_diff": float((a - b).abs().max())}


# ---------------------------------------------------------------------- main
class Config:
    def __init__(self, args):
        self.smoke = args.smoke
        self.device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.precision_name = args.precision or ("fp16" if self.device.type == "cuda" else "fp32")
        self.precision = self.precision_name
        self.dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[self.precision]
        self.workers = args.workers if args.workers is not None else (
            0 if args.smoke else min(16, os.cpu_count() or 1))
        self.batch = args.batch


def machine_info(cfg) -> dict:
    info = {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count(),
            "device": str(cfg.device), "precision": cfg.precision_name, "workers": cfg.workers,
            "batch": cfg.batch, "smoke": cfg.smoke}
    try:
        import torchvision

        info["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    try:
        import open_clip

        info["open_clip"] = open_clip.__version__
    except ImportError:
        pass
    if cfg.device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(cfg.device)
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(os.environ.get("OUT", "out"), "gpu_e2e.json"))
    ap.add_argument("--smoke", action="store_true", help="tiny model, a few small images (CPU is fine)")
    ap.add_argument("--models", default=None, help="comma-separated (default ViT-B-32,ViT-L-14)")
    ap.add_argument("--images", type=int, default=None, help="JPEG files (default 20000; smoke 24)")
    ap.add_argument("--batch", type=int, default=None, help="default 512 (smoke 8)")
    ap.add_argument("--workers", type=int, default=None, help="decoding processes (default min(16, CPUs))")
    ap.add_argument("--device", default=None)
    ap.add_argument("--precision", default=None)
    ap.add_argument("--budget-s", type=float, default=540.0)
    ap.add_argument("--workdir", default=None, help="where images and checkpoints go (default: a temp dir)")
    args = ap.parse_args(argv)
    if args.batch is None:
        args.batch = 8 if args.smoke else 512
    cfg = Config(args)
    t_start = time.perf_counter()
    n_images = args.images or (24 if args.smoke else 20000)
    models = (args.models or (TINY_ARCH if args.smoke else "ViT-B-32,ViT-L-14")).split(",")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="coderclip-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("CODERCLIP_CACHE", str(work / "cache"))
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    result: dict = {"machine": machine_info(cfg), "images": n_images, "models": {}, "errors": {}}

    def save() -> None:
        result["elapsed_s"] = time.perf_counter() - t_start
        out_path.write_text(json.dumps(result, indent=2, default=str) + "\n")

    def section(model: str, name: str, fn) -> None:
        if time.perf_counter() - t_start > args.budget_s:
            result["models"].setdefault(model, {})[name] = {"skipped": "time budget"}
            save()
            return
        try:
            result["models"].setdefault(model, {})[name] = fn()
        except Exception as e:  # one failing section must not lose the others
            result["errors"][f"{model}/{name}"] = f"{type(e).__name__}: {e}"
            traceback.print_exc()
        save()
        print(f"[{time.perf_counter() - t_start:6.1f}s] {model} {name}: "
              f"{result['models'].get(model, {}).get(name)}", flush=True)

    import open_clip

    if args.smoke:
        cfg_file = work / f"{TINY_ARCH}.json"
        cfg_file.write_text(json.dumps(TINY_CFG))
        open_clip.add_model_config(cfg_file)
    from coderclip.knowledge import load_knowledge

    classes = load_knowledge("cifar10").class_names
    size = (64, 48) if args.smoke else (500, 375)
    gen_s, folder = _timed(lambda: make_jpeg_folder(work / "jpegs", classes, n_images, size,
                                                    max(1, min(16, os.cpu_count() or 1))), cfg.device)
    result["jpeg_folder"] = {"seconds_to_make": gen_s, "size": size,
                             "mean_bytes": sum(p.stat().st_size for p in list(folder.rglob("*.jpg"))[:200])
                             / min(200, n_images)}
    from coderclip.datasets import from_folder

    ds = from_folder(folder)
    items = list(zip(map(str, ds.paths), ds.labels().tolist()))
    try:
        import clip_benchmark  # noqa: F401

        have_cb = True
    except ImportError as e:
        have_cb = False
        result["clip_benchmark"] = f"not importable here ({e}); install it (pip install clip_benchmark) to compare"
    for arch in models:
        ckpt = str(make_checkpoint(arch, work / f"{arch}.safetensors"))
        spec = f"open_clip:{arch}:{ckpt}"
        section(arch, "encoder_only", lambda: encoder_only(arch, ckpt, cfg))
        section(arch, "plain", lambda: plain_loop(arch, ckpt, items, classes, cfg, pin=cfg.device.type == "cuda"))
        section(arch, "plain_unpinned", lambda: plain_loop(arch, ckpt, items, classes, cfg, pin=False))
        section(arch, "coderclip", lambda: coderclip_run(spec, folder, cfg, decode="cpu"))
        section(arch, "coderclip_device_decode", lambda: coderclip_run(spec, folder, cfg, decode="device"))
        if have_cb:
            section(arch, "clip_benchmark", lambda: clip_benchmark_run(arch, ckpt, folder, classes, cfg))
        section(arch, "decode_agreement", lambda: decode_agreement(spec, ds.paths[: cfg.batch], cfg))
        r = result["models"][arch]
        base = r.get("plain", {}).get("images_per_s")
        if base:
            r["ratio_vs_plain"] = {k: v["images_per_s"] / base for k, v in r.items()
                                   if isinstance(v, dict) and "images_per_s" in v}
        save()
    print(json.dumps({m: r.get("ratio_vs_plain") for m, r in result["models"].items()}, indent=2))
    print(f"wrote {out_path}")
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
