"""A classification job over many shards: the driver side shared by both engines (which shards
are left, output shards completed from classified blocks, progress, the summary) and the
single-process engine itself."""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections.abc import Iterable, Sequence

import numpy as np

from ..errors import ConfigError
from .blocks import BlockClassifier, data_rows, decode_block, shard_blocks
from .progress import Progress
from .sinks import ParquetRows, ShardFolder, prediction_table
from .sources import DEFAULT_SHARD_SIZE, Shard, list_shards, require

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: Unreadable records listed by name in a summary (all are counted).
FAILURE_EXAMPLES = 20


# ---------------------------------------------------------------------------------- tracking
@dataclasses.dataclass
class _ShardState:
    writer: ParquetRows | None = None
    final: int | None = None
    expected: dict[int, int] = dataclasses.field(default_factory=dict)
    received: int = 0
    images: int = 0


class ShardTracker:
    """Turns classified blocks, in any order and grouping, into finished output.

    With a :class:`ShardFolder`, each shard gets its own file, committed and recorded in the
    manifest once all its batches have arrived; a bad shard's partial file is discarded. With
    one ``writer`` (:class:`ParquetRows` or :class:`TextRows`), rows are appended as they come.
    """

    def __init__(self, class_names: Sequence[str], with_vector: bool, progress: Progress,
                 folder: ShardFolder | None = None, writer=None):
        self.class_names, self.with_vector, self.progress = list(class_names), with_vector, progress
        self.folder, self.writer = folder, writer
        self.state: dict[str, _ShardState] = {}
        self.done: list[str] = []
        self.bad: dict[str, str] = {}
        self.images = self.unreadable = 0
        self.failures: list[dict] = []
        self.schema = None

    def add(self, block: dict) -> None:
        names = block["shard"]
        for name in dict.fromkeys(names.tolist()):
            if name in self.bad:
                continue
            rows = np.flatnonzero(names == name)
            self._add(str(name), {k: v[rows] for k, v in block.items()})

    def _add(self, name: str, block: dict) -> None:
        st = self.state.setdefault(name, _ShardState())
        status = block["seq"] < 0
        for err, final in zip(block["error"][status], block["final"][status]):
            if err:
                return self._fail(name, st, str(err))
            st.final = int(final)
        data = ~status
        for seq, n, final in zip(block["seq"][data], block["rows"][data], block["final"][data]):
            st.expected[int(seq)] = int(n)
            if final >= 0:
                st.final = int(final)
        st.received += int(data.sum())
        failed = np.flatnonzero(data & (block["error"] != ""))
        self.unreadable += len(failed)
        for i in failed[:max(0, FAILURE_EXAMPLES - len(self.failures))]:
            self.failures.append({"key": str(block["key"][i]), "reason": str(block["error"][i])})
        table = prediction_table(block, self.class_names, self.with_vector)
        self.schema = table.schema
        if table.num_rows or self.folder is not None:
            if self.folder is not None and st.writer is None:
                st.writer = self.folder.open(name)
            (st.writer or self.writer).write(table)
        st.images += table.num_rows
        self.images += table.num_rows
        self.progress.update(images=table.num_rows)
        if st.final is not None and len(st.expected) == st.final and \
                st.received == sum(st.expected.values()):
            self._finish(name, st)

    def _finish(self, name: str, st: _ShardState) -> None:
        if self.folder is not None:
            writer = st.writer or self.folder.open(name)
            writer.close(schema=self.schema)
            self.folder.record({"shard": name, "file": self.folder.file_name(name),
                                "rows": st.images, "unreadable": st.received - st.images})
        del self.state[name]
        self.done.append(name)
        self.progress.update(shards=1)

    def _fail(self, name: str, st: _ShardState, error: str) -> None:
        if st.writer is not None:
            st.writer.abort()
        self.state.pop(name, None)
        self.bad[name] = error
        log.warning("%s", error)
        self.progress.update(shards=1)

    def abort(self) -> None:
        """Drop unfinished shard files (an interrupted job's partial shards are redone later)."""
        for st in self.state.values():
            if st.writer is not None:
                st.writer.abort()


# ---------------------------------------------------------------------------------- the job
@dataclasses.dataclass
class ClassifyJob:
    """Everything a classification job needs, built once on the driver.

    ``classifier``: a fitted :class:`~coderclip.CoderClassifier`; ``model``: the encoder spec
    workers load (each Ray actor loads its own copy); ``images``: whether shards hold images (else
    precomputed embeddings).
    """

    shards: list[Shard]
    classifier: object
    model: str
    images: bool
    top: int = 5
    batch_size: int = 64
    with_vector: bool = False
    device: str | None = None
    precision: str | None = None
    decode_threads: int = 0

    @property
    def embed_dim(self) -> int:
        return int(self.classifier.bank_.embed_dim)

    def describe(self, inputs: Sequence[str], input_format: str) -> dict:
        """What determines the output (a resumed job must match it)."""
        clf = self.classifier
        return {"inputs": [str(i) for i in inputs], "input_format": input_format,
                "model": clf.bank_.encoder_identity, "knowledge": clf.bank_.knowledge_digest,
                "method": clf.method, "rerank_k": int(clf.rerank_k), "tau": float(clf.tau),
                "top": self.top, "batch_size": self.batch_size, "coder_vector": self.with_vector,
                "classes": len(clf.classes_)}


def classify(inputs: Sequence[str], model: str, knowledge, output: str | None, *,
             input_format: str = "auto", output_format: str | None = None, engine: str = "local",
             method: str = "coder-rerank", rerank_k: int | None = None, tau: float | None = None,
             top: int = 5, batch_size: int = 64, shard_size: int = DEFAULT_SHARD_SIZE,
             with_vector: bool = False, device: str | None = None, precision: str | None = None,
             cache: bool = True, decode_threads: int | None = None, address: str | None = None,
             workers: int = 1, overwrite: bool = False, progress: bool = True) -> dict:
    """Classify every record of ``inputs`` and write predictions to ``output``; returns a summary.

    ``output`` with a file suffix (``.parquet``, ``.csv``, ``.jsonl``, ``.json``), or ``None``
    (standard output, text formats only), is one file written by this process
    (``engine="local"``); anything else is a folder of one Parquet file per input shard with a
    manifest, which a rerun of the same job resumes. ``engine="ray"`` runs on a Ray cluster
    (``address``, or a local instance) with ``workers`` model actors.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
    require("pyarrow", "fsspec", *(("ray",) if engine == "ray" else ()))
    if output is None:
        single = output_format or "table"
    elif output_format not in (None, "parquet"):
        single = output_format
    else:
        single = _suffix_format(output)   # None: a folder
    if single and engine == "ray":
        raise ConfigError(f"the Ray engine writes a folder of Parquet shards; give -o a folder, "
                          f"not {output or 'standard output'!r}")
    if single == "parquet" and output is None:
        raise ConfigError("Parquet output needs a file: give -o FILE.parquet (or -o FOLDER)")
    shards = list_shards(inputs, input_format, shard_size)
    fmt = shards[0].format if shards else input_format
    job = build_job(shards, model, knowledge, method=method, rerank_k=rerank_k, tau=tau, top=top,
                    batch_size=batch_size, with_vector=with_vector, device=device,
                    precision=precision, cache=cache, decode_threads=decode_threads)
    if single:
        return run_to_file(job, output, single or "table", job.describe(inputs, fmt),
                           overwrite=overwrite, progress=progress)
    folder = ShardFolder(output, job.describe(inputs, fmt))
    return run_to_folder(job, folder, engine=engine, address=address, workers=workers,
                         progress=progress)


def _suffix_format(output: str) -> str | None:
    suffix = str(output).lower().rsplit(".", 1)[-1] if "." in str(output).rsplit("/", 1)[-1] else ""
    return {"parquet": "parquet", "csv": "csv", "jsonl": "jsonl", "json": "json",
            "txt": "table"}.get(suffix)


def build_job(shards: list[Shard], model: str, knowledge, *, method: str = "coder-rerank",
              rerank_k: int | None = None, tau: float | None = None, top: int = 5,
              batch_size: int = 64, with_vector: bool = False, device: str | None = None,
              precision: str | None = None, cache: bool = True,
              decode_threads: int | None = None, encoder=None) -> ClassifyJob:
    """Load the model on the driver and fit the classifier (builds the text bank once)."""
    from ..classifier import CoderClassifier
    from ..defaults import DEFAULT_TAU, DEFAULT_TOP_K
    from ..encoders import load_encoder

    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    if top < 1:
        raise ConfigError(f"top must be at least 1, got {top}")
    encoder = encoder or load_encoder(model, device=device, precision=precision)
    clf = CoderClassifier(encoder, knowledge, method=method,
                          rerank_k=DEFAULT_TOP_K if rerank_k is None else rerank_k,
                          tau=DEFAULT_TAU if tau is None else tau, batch_size=batch_size,
                          cache=cache).fit()
    images = bool(shards) and shards[0].format != "embeddings"
    if decode_threads is None:
        import os

        decode_threads = min(4, os.cpu_count() or 1)
    return ClassifyJob(shards=shards, classifier=clf, model=model, images=images, top=top,
                       batch_size=batch_size, with_vector=with_vector, device=device,
                       precision=precision, decode_threads=decode_threads)


def local_blocks(job: ClassifyJob, shards: Iterable[Shard]) -> Iterable[dict]:
    """The single-process engine: shard after shard, block after block, through the stages."""
    clf = job.classifier
    scorer = BlockClassifier(clf, clf.encoder, top=job.top, with_vector=job.with_vector)
    preprocess = clf.encoder.preprocess if job.images else None
    for shard in shards:
        for block in shard_blocks(shard, job.batch_size, job.embed_dim):
            if preprocess is not None:
                block = decode_block(block, preprocess, job.decode_threads)
            yield scorer(block)


class TextRows:
    """:class:`coderclip.rows.RowWriter` (table, csv, jsonl, json; resumable) fed with prediction
    tables; rows it already holds from an interrupted run are not written twice."""

    def __init__(self, writer):
        self.writer, self.rows = writer, 0

    def write(self, table) -> None:
        keys = table.column("key").to_pylist()
        keep = [i for i, k in enumerate(keys) if not self.writer.done(k)]
        if not keep:
            return
        labels = table.column("top_labels").to_pylist()
        scores = table.column("top_scores").to_pylist()
        self.writer.write([keys[i] for i in keep], np.array([labels[i] for i in keep], dtype=object),
                          np.array([scores[i] for i in keep], dtype=np.float32))
        self.rows += len(keep)

    def close(self, schema=None) -> None:
        self.writer.close(complete=True)

    def abort(self) -> None:
        self.writer.close(complete=False)


def run_to_file(job: ClassifyJob, output: str | None, fmt: str, settings: dict, *,
                overwrite: bool = False, progress: bool = True) -> dict:
    """Single process, one output: Parquet (row group by row group, renamed into place at the
    end) or a text format of :mod:`coderclip.rows` (resumable, standard output when ``None``)."""
    if fmt == "parquet":
        writer = ParquetRows(str(output))
    else:
        from ..rows import RowWriter

        rows = RowWriter(output, fmt, settings, overwrite=overwrite,
                         extra={"method": job.classifier.method})
        writer = TextRows(rows)
    prog = Progress(len(job.shards), enabled=progress)
    tracker = ShardTracker(job.classifier.classes_, job.with_vector, prog, writer=writer)
    if fmt != "parquet" and rows.complete:
        print(f"{output} is already complete (same settings); pass --overwrite to redo it",
              file=sys.stderr)
        return summary(tracker, prog, total=len(job.shards), skipped=len(job.shards),
                       engine="local", output=str(output))
    try:
        for block in local_blocks(job, job.shards):
            tracker.add(block)
    except BaseException:
        writer.abort()
        raise
    writer.close(schema=tracker.schema or prediction_table(_empty_block(job), job.classifier.classes_,
                                                           job.with_vector).schema)
    return summary(tracker, prog, total=len(job.shards), skipped=0, engine="local",
                   output=str(output or "standard output"))


def _empty_block(job: ClassifyJob) -> dict:
    top = min(job.top, len(job.classifier.classes_))
    out = {"shard": np.array([], dtype=object), "seq": np.zeros(0, np.int64),
           "final": np.zeros(0, np.int64), "rows": np.zeros(0, np.int64),
           "error": np.array([], dtype=object), "key": np.array([], dtype=object),
           "top_index": np.zeros((0, top), np.int64), "top_scores": np.zeros((0, top), np.float32)}
    if job.with_vector:
        out["coder_vector"] = np.zeros((0, int(job.classifier.tables_.general_rows.numel())), np.float32)
    return out


def run_to_folder(job: ClassifyJob, folder: ShardFolder, engine: str = "local",
                  address: str | None = None, workers: int = 1, progress: bool = True) -> dict:
    """Per-shard output files with a manifest; shards the manifest lists are skipped."""
    finished = folder.finished()
    todo = [s for s in job.shards if s.name not in finished]
    prog = Progress(len(todo), enabled=progress)
    tracker = ShardTracker(job.classifier.classes_, job.with_vector, prog, folder=folder)
    tracker.schema = prediction_table(_empty_block(job), job.classifier.classes_, job.with_vector).schema
    if progress and finished:
        print(f"resuming: {len(finished)} of {len(job.shards)} shards already done", file=sys.stderr)
    try:
        if engine == "ray":
            from .ray_engine import ray_blocks

            blocks = ray_blocks(job, todo, address=address, workers=workers)
        else:
            blocks = local_blocks(job, todo)
        for block in blocks:
            tracker.add(block)
    except BaseException:
        tracker.abort()
        raise
    out = summary(tracker, prog, total=len(job.shards), skipped=len(finished), engine=engine,
                  output=folder.url)
    folder.write_summary(out)
    return out


def summary(tracker: ShardTracker, prog: Progress, *, total: int, skipped: int, engine: str,
            output: str) -> dict:
    seconds = time.perf_counter() - prog.start
    return {"engine": engine, "output": output, "shards_total": total, "shards_done": len(tracker.done),
            "shards_skipped_already_done": skipped, "shards_failed": len(tracker.bad),
            "failed_shards": [{"shard": k, "reason": v} for k, v in tracker.bad.items()],
            "images": tracker.images, "unreadable": tracker.unreadable,
            "unreadable_examples": tracker.failures, "seconds": round(seconds, 3),
            "images_per_second": round(tracker.images / seconds, 2) if seconds > 0 else None,
            # start-up (models loaded, tables shipped, first shard read) apart from the steady state
            "first_result_seconds": round(prog.first_result, 3) if prog.first_result is not None else None,
            "unfinished_shards": sorted(tracker.state)}


def format_summary(s: dict) -> str:
    """A few lines for people."""
    lines = [f"{s['images']} images classified in {s['seconds']:.1f} s "
             f"({s['images_per_second'] or 0:.1f} images/s) with the {s['engine']} engine; "
             f"{s['shards_done']} of {s['shards_total']} shards done"
             + (f", {s['shards_skipped_already_done']} already done before" if s['shards_skipped_already_done'] else "")
             + f"; output: {s['output']}"]
    for bad in s["failed_shards"]:
        lines.append(f"  skipped shard {bad['shard']}: {bad['reason']}")
    if s["unreadable"]:
        lines.append(f"  {s['unreadable']} unreadable record(s), e.g.:")
        lines.extend(f"    {f['reason']}" for f in s["unreadable_examples"][:5])
    return "\n".join(lines)
