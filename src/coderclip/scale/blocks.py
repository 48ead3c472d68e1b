"""The three per-block stages every engine runs, as plain functions of dict-of-array blocks
(Ray Data's ``numpy`` batch format): read a shard into blocks, decode images to pixels, then
embed and classify. The single-process loop and the Ray pipeline call exactly these functions on
exactly the same blocks (one block per reader batch), which is what makes their predictions equal.

Every row carries bookkeeping columns so that output shards can be completed and resumed whatever
an engine merges or splits: ``shard`` (name), ``seq`` (reader batch within the shard), ``rows``
(records in that batch), ``final`` (on a shard's last batch: how many batches it has, else -1)
and ``error`` (why the record could not be classified, "" if it could). A shard that is empty or
unreadable yields one status row with ``seq`` = -1 instead (``error`` holds the shard's problem).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import numpy as np

from ..errors import ConfigError, ImageReadError, ShardError
from .sources import Batch, Shard, read_image, read_shard

Block = dict[str, np.ndarray]


def _book(shard: str, n: int, seq: int, final: int, errors=None) -> Block:
    return {"shard": np.array([shard] * n, dtype=object), "seq": np.full(n, seq, dtype=np.int64),
            "final": np.full(n, final, dtype=np.int64), "rows": np.full(n, n, dtype=np.int64),
            "error": np.array(errors if errors is not None else [""] * n, dtype=object)}


BOOK_COLUMNS = ("shard", "seq", "final", "rows", "error", "key")


def status_block(shard: Shard, error: str = "", final: int = 0, embed_dim: int | None = None) -> Block:
    """One row saying that ``shard`` ended after ``final`` blocks, or failed with ``error``.

    It has the columns of the shard's data blocks (engines may concatenate the two).
    """
    out = {**_book(shard.name, 1, -1, final, [error]), "key": np.array([""], dtype=object)}
    if shard.format == "embeddings":
        out["embedding"] = np.zeros((1, embed_dim or 0), dtype=np.float32)
    else:
        out["image"], out["path"] = np.array([b""], dtype=object), np.array([""], dtype=object)
    return out


def data_rows(block: Block) -> np.ndarray:
    """Indices of the rows that hold a readable record (not status rows, not failed records)."""
    return np.flatnonzero((block["seq"] >= 0) & (block["error"] == ""))


def _from_batch(shard: Shard, batch: Batch, seq: int, final: int) -> Block:
    n = len(batch)
    out = {**_book(shard.name, n, seq, final), "key": np.array(batch.keys, dtype=object)}
    if batch.embeddings is not None:
        out["embedding"] = np.ascontiguousarray(batch.embeddings, dtype=np.float32)
    else:
        data = np.empty(n, dtype=object)
        paths = np.empty(n, dtype=object)
        for i, item in enumerate(batch.images):
            is_bytes = isinstance(item, (bytes, bytearray, memoryview))
            data[i] = bytes(item) if is_bytes else b""
            paths[i] = item if isinstance(item, str) else ""
        out["image"], out["path"] = data, paths
    return out


def shard_blocks(shard: Shard, batch_size: int, embed_dim: int | None = None) -> Iterator[Block]:
    """Read ``shard`` as blocks of ``batch_size`` records; the last block is marked ``final``.

    One batch is held back so that the last can be marked; a failing shard ends with a status
    row naming the problem (earlier blocks of it must then be discarded by the writer).
    """
    held: Batch | None = None
    seq = 0
    try:
        for batch in read_shard(shard, batch_size, embed_dim):
            if held is not None:
                yield _from_batch(shard, held, seq, -1)
                seq += 1
            held = batch
    except ShardError as e:
        yield status_block(shard, error=str(e), embed_dim=embed_dim)
        return
    if held is None:
        yield status_block(shard, final=0, embed_dim=embed_dim)
    else:
        yield _from_batch(shard, held, seq, seq + 1)


def decode_block(block: Block, preprocess: Callable, threads: int = 0) -> Block:
    """Decode and preprocess the images of a block into ``pixels`` ``[n, 3, H, W]`` float32.

    Records that cannot be decoded keep their row with an ``error`` and zero pixels.
    """
    if "image" not in block:
        return block
    n = len(block["key"])
    todo = np.flatnonzero((block["seq"] >= 0) & (block["error"] == ""))

    def one(i: int):
        item = block["image"][i] if len(block["image"][i]) else (block["path"][i] or None)
        try:
            return preprocess(read_image(item, block["key"][i])).numpy(), ""
        except ImageReadError as e:
            return None, str(e)
        except Exception as e:  # an odd image must not end the run: report it by key
            return None, f"{block['key'][i]}: cannot preprocess image ({type(e).__name__}: {e})"

    with _single_torch_thread():
        if threads > 1 and len(todo) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(threads) as pool:
                results = list(pool.map(one, todo))
        else:
            results = [one(i) for i in todo]
    shape = next((p.shape for p, _ in results if p is not None), None) or _pixel_shape(preprocess)
    pixels = np.zeros((n, *shape), dtype=np.float32)
    errors = block["error"].copy()
    for i, (p, err) in zip(todo, results):
        if p is not None:
            pixels[i] = p
        else:
            errors[i] = err
    out = {k: v for k, v in block.items() if k not in ("image", "path")}
    out["error"], out["pixels"] = errors, pixels
    return out


@contextlib.contextmanager
def _single_torch_thread():
    """Preprocessing one small image gains nothing from torch's intra-op threads, and on a busy
    machine their spinning made it 9x slower (31 ms -> 275 ms per image measured here)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _pixel_shape(preprocess: Callable) -> tuple[int, ...]:
    """The shape ``preprocess`` gives every image (blocks without a decodable image need it)."""
    from PIL import Image

    return tuple(preprocess(Image.new("RGB", (64, 64))).shape)


class BlockEmbedder:
    """Unit embeddings of a block's readable rows: its ``embedding`` column as it is, or its
    ``pixels`` through ``encoder``. As a stage, adds ``embedding`` ``[n, D]`` (zeros where a row
    failed) to the bookkeeping columns."""

    def __init__(self, encoder=None):
        self.encoder = encoder

    def embed(self, block: Block, rows: np.ndarray):
        import torch

        if "embedding" in block:   # precomputed: made unit length, as pipeline.embedding_batches does
            x = torch.from_numpy(np.ascontiguousarray(block["embedding"][rows], dtype=np.float32))
            return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        if self.encoder is None:
            raise ConfigError("blocks of images need an image encoder")
        pixels = torch.from_numpy(np.ascontiguousarray(block["pixels"][rows]))
        return self.encoder.encode_images(pixels, batch_size=len(rows))

    def __call__(self, block: Block) -> Block:
        n = len(block["key"])
        out = np.zeros((n, self.encoder.embed_dim), dtype=np.float32)
        for group in batch_groups(block, data_rows(block)):
            out[group] = self.embed(block, group).float().cpu().numpy()
        return {**{k: block[k] for k in BOOK_COLUMNS}, "embedding": out}


class BlockClassifier:
    """Embed (when given pixels) and classify blocks with :func:`coderclip.pipeline.top_k_batch`.

    ``classifier``: a fitted :class:`~coderclip.CoderClassifier` (its tables and settings are
    used; its encoder may be ``None`` when blocks hold embeddings). Output rows keep the bookkeeping columns and add ``top_index``
    ``[n, top]`` (best first; -1 for failed rows), ``top_scores`` ``[n, top]`` (probabilities)
    and, with ``with_vector``, ``coder_vector`` ``[n, V]``.
    """

    def __init__(self, classifier, encoder=None, top: int = 5, with_vector: bool = False):
        self.classifier = classifier
        self.embedder = BlockEmbedder(encoder)
        self.top = min(int(top), len(classifier.classes_))
        self.with_vector = with_vector

    def __call__(self, block: Block) -> Block:
        import torch

        from ..pipeline import top_k_batch

        book = {k: block[k] for k in BOOK_COLUMNS}
        n = len(block["key"])
        index = np.full((n, self.top), -1, dtype=np.int64)
        scores = np.full((n, self.top), np.nan, dtype=np.float32)
        vectors = None
        clf = self.classifier
        for group in batch_groups(block, data_rows(block)):
            x = self.embedder.embed(block, group)
            with torch.inference_mode():   # the one scoring path of every engine and command
                idx, prob = top_k_batch(x, clf.tables_, k=self.top, **clf.scoring_settings())
            index[group], scores[group] = idx, prob
            if self.with_vector:
                v = self._vectors(x)
                if vectors is None:
                    vectors = np.zeros((n, v.shape[1]), dtype=np.float32)
                vectors[group] = v
        out = {**book, "top_index": index, "top_scores": scores}
        if self.with_vector:
            out["coder_vector"] = vectors if vectors is not None else \
                np.zeros((n, int(self.classifier.tables_.general_rows.numel())), dtype=np.float32)
        return out

    def _vectors(self, x) -> np.ndarray:
        from ..scoring import coder_vectors

        tables = self.classifier.tables_
        return coder_vectors(x.to(tables.group_sum.device), tables).float().cpu().numpy()


def batch_groups(block: Block, rows: np.ndarray) -> list[np.ndarray]:
    """``rows`` split by reader batch (shard, seq), in order of appearance.

    Stages work batch by batch whatever an engine merged, so that every engine multiplies the
    same matrices (a matrix product's rounding can depend on its row count).
    """
    if rows.size == 0:
        return []
    ident = [(block["shard"][i], int(block["seq"][i])) for i in rows]
    if all(t == ident[0] for t in ident):
        return [rows]
    order: dict[tuple, list[int]] = {}
    for r, t in zip(rows, ident):
        order.setdefault(t, []).append(int(r))
    return [np.array(v, dtype=np.int64) for v in order.values()]
