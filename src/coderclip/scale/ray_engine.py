"""The Ray engine: a Ray Data pipeline over the same per-block stages as the single-process path.

    shards ──read tasks──▶ blocks ──decode tasks──▶ pixels ──actor pool──▶ predictions ──▶ driver
                                                   (one model per actor)               (shard files,
                                                                                        manifest)

The fitted classifier (text bank and scoring tables, built once on the driver) goes into the
object store with ``ray.put`` and every actor reads it from there; each actor loads its own image
encoder, on a GPU where the cluster has GPUs. The driver completes output shards from the
classified blocks (see :class:`coderclip.scale.job.ShardTracker`).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator, Sequence

from ..errors import ConfigError
from .blocks import BlockClassifier, BlockEmbedder, decode_block, shard_blocks
from .sources import Shard, require

log = logging.getLogger(__name__)

#: CPUs each read/decode task asks Ray for.
READ_CPUS = 0.5


def _read(batch: dict, batch_size: int, embed_dim: int) -> Iterator[dict]:
    for text in batch["shard"]:
        yield from shard_blocks(Shard.from_json(str(text)), batch_size, embed_dim)


def _decode(block: dict, preprocess, threads: int) -> dict:
    return decode_block(block, preprocess, threads)


class _ClassifyActor:
    """One worker of the actor pool: the shared classifier plus its own copy of the model."""

    def __init__(self, classifier_ref: list, model: str, device: str | None, precision: str | None,
                 top: int, with_vector: bool, images: bool):
        import ray
        import torch

        from ..encoders import load_encoder

        clf = ray.get(classifier_ref[0])
        encoder = None
        if images:
            encoder = load_encoder(model, device=device, precision=precision)
            clf.bank_.check_encoder(encoder)
            target = encoder.device
        else:
            target = torch.device(device or "cpu")
        if clf.tables_.group_sum.device != target:
            dtype = encoder.dtype if encoder is not None and target.type != "cpu" else torch.float32
            clf.tables_ = clf.tables_.to(target, dtype)
        self.scorer = BlockClassifier(clf, encoder, top=top, with_vector=with_vector)

    def __call__(self, block: dict) -> dict:
        return self.scorer(block)


def portable_classifier(classifier, with_vector: bool = False):
    """What actors need of a fitted classifier: its scoring tables and settings, without the
    model (each actor loads its own), without the bank's text embeddings (the tables hold what
    scoring needs) and, unless CODER vectors are asked for, without their axes (the largest
    table: one row per distinct general text), so that actors start sooner."""
    import dataclasses

    portable = copy.copy(classifier)
    portable.encoder = None
    if not with_vector:
        tables = classifier.tables_
        portable.tables_ = dataclasses.replace(tables, general_emb=tables.general_emb[:0])
    bank = classifier.bank_
    empty = bank.entry_row[:0]
    portable.bank_ = dataclasses.replace(bank, texts=[], embeddings=bank.embeddings[:0],
                                         entry_row=empty, entry_class=empty, entry_type=empty,
                                         entry_other=empty)
    return portable


def init_ray(address: str | None = None, num_cpus: int | None = None) -> bool:
    """Connect to the cluster at ``address`` (or start a local instance); ``True`` if this call
    started or joined it (and so should shut it down)."""
    require("ray", "pyarrow", "fsspec")
    import ray

    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                 configure_logging=False)
    except ConnectionError as e:
        raise ConfigError(f"cannot reach a Ray cluster at {address!r} ({e}); start one with "
                          "'ray start --head' or leave out --address for a local instance") from None
    return True


def _pipeline(shards: Sequence[Shard], *, batch_size: int, embed_dim: int, preprocess, actor,
              actor_kwargs: dict, workers: int, gpus_per_worker: float):
    """The Ray Data pipeline: read tasks, decode tasks (images only), then the actor pool."""
    import ray

    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True   # shard files come out in input order
    ctx.enable_progress_bars = False               # jobs print their own progress
    ds = ray.data.from_items([{"shard": s.to_json()} for s in shards], override_num_blocks=len(shards))
    # read and decode tasks ask for less than a CPU: they do not fuse into the actors then, and
    # keep running beside them (on a 2-CPU machine: one actor and two reader tasks)
    ds = ds.map_batches(_read, batch_size=1, batch_format="numpy", num_cpus=READ_CPUS,
                        fn_kwargs={"batch_size": batch_size, "embed_dim": embed_dim})
    if preprocess is not None:
        ds = ds.map_batches(_decode, batch_size=None, batch_format="numpy", num_cpus=READ_CPUS,
                            fn_kwargs={"preprocess": preprocess, "threads": 1})
    return ds.map_batches(actor, batch_size=None, batch_format="numpy",
                          compute=ray.data.ActorPoolStrategy(size=workers),
                          num_cpus=0 if gpus_per_worker > 0 else 1, num_gpus=gpus_per_worker,
                          fn_constructor_kwargs=actor_kwargs)


def _gpus(device: str | None, gpus_per_worker: float | None) -> tuple[float, str]:
    import ray

    if gpus_per_worker is None:
        has_gpu = ray.cluster_resources().get("GPU", 0) > 0 and device in (None, "cuda")
        gpus_per_worker = 1.0 if has_gpu else 0.0
    return gpus_per_worker, device or ("cuda" if gpus_per_worker > 0 else "cpu")


def ray_blocks(job, shards: Sequence[Shard], address: str | None = None, workers: int = 1,
               gpus_per_worker: float | None = None) -> Iterator[dict]:
    """Classified blocks of ``shards``, computed on Ray (see the module docstring)."""
    import ray

    if not shards:
        return
    started = init_ray(address)
    try:
        gpus, device = _gpus(job.device, gpus_per_worker)
        classifier_ref = ray.put(portable_classifier(job.classifier, job.with_vector))
        ds = _pipeline(shards, batch_size=job.batch_size, embed_dim=job.embed_dim,
                       preprocess=job.classifier.encoder.preprocess if job.images else None,
                       actor=_ClassifyActor, workers=workers, gpus_per_worker=gpus,
                       actor_kwargs={"classifier_ref": [classifier_ref], "model": job.model,
                                     "device": device, "precision": job.precision, "top": job.top,
                                     "with_vector": job.with_vector, "images": job.images})
        yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
    finally:
        if started:
            ray.shutdown()


class _EmbedActor:
    """One worker that only embeds images (for evaluation, which scores on the driver)."""

    def __init__(self, model: str, device: str | None, precision: str | None):
        from ..encoders import load_encoder

        self.embedder = BlockEmbedder(load_encoder(model, device=device, precision=precision))

    def __call__(self, block: dict) -> dict:
        return self.embedder(block)


def ray_encoded_batches(encoder, paths: Sequence, batch_size: int = 64, num_workers: int | None = None,
                        show_progress_bar: bool = False, *, model: str, address: str | None = None,
                        workers: int = 1, device: str | None = None, precision: str | None = None,
                        shard_size: int = 4096) -> Iterator[tuple[list[int], object, list[tuple[str, str]]]]:
    """:func:`coderclip.images.iter_encoded_batches` computed by a Ray actor pool: yields, in
    order, ``(indices into paths, unit embeddings [n, D], (path, reason) of unreadable files)``
    for the same batches (so the same embeddings on CPU fp32).

    ``encoder`` (loaded on the driver) gives the preprocessing; every actor loads ``model``.
    Batches that come back early wait in a small reorder buffer until their turn.
    """
    import numpy as np
    import ray
    import torch

    from .progress import Progress
    from .sources import path_shards

    shard_size = max(batch_size, shard_size // batch_size * batch_size)   # batches as one list's
    shards = path_shards(paths, shard_size)
    order = {s.name: i for i, s in enumerate(shards)}
    sizes = [min(batch_size, len(paths) - start) for start in range(0, len(paths), batch_size)]
    pending: dict[int, dict] = {}
    turn = 0
    prog = Progress(len(shards), enabled=show_progress_bar)
    started = init_ray(address)
    try:
        gpus, dev = _gpus(device, None)
        ds = _pipeline(shards, batch_size=batch_size, embed_dim=encoder.embed_dim,
                       preprocess=encoder.preprocess, actor=_EmbedActor, workers=workers,
                       gpus_per_worker=gpus,
                       actor_kwargs={"model": model, "device": dev, "precision": precision})
        for block in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
            data = block["seq"] >= 0
            for shard, seq in dict.fromkeys(zip(block["shard"][data].tolist(), block["seq"][data].tolist())):
                rows = np.flatnonzero((block["shard"] == shard) & (block["seq"] == seq))
                number = order[shard] * (shard_size // batch_size) + int(seq)   # global batch number
                part = pending.setdefault(number, {"embedding": [], "error": []})
                part["embedding"].append(block["embedding"][rows])
                part["error"].extend(block["error"][rows].tolist())
            while turn < len(sizes) and turn in pending and len(pending[turn]["error"]) == sizes[turn]:
                part = pending.pop(turn)
                first = turn * batch_size
                ok = np.array([e == "" for e in part["error"]], dtype=bool)
                emb = torch.from_numpy(np.concatenate(part["embedding"])[ok]).to(encoder.device)
                failures = [(str(paths[first + int(i)]), part["error"][i]) for i in np.flatnonzero(~ok)]
                prog.update(images=len(ok), shards=int((turn + 1) * batch_size % shard_size == 0
                                                       or turn + 1 == len(sizes)))
                yield [first + int(i) for i in np.flatnonzero(ok)], emb, failures
                turn += 1
    finally:
        if started:
            ray.shutdown()
    if turn != len(sizes):
        raise ConfigError(f"the Ray job returned {turn} of {len(sizes)} batches of images")
