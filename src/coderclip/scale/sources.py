"""Readers for the layouts large image collections come in, one per format, each streaming one
shard as batches of keys with images (encoded bytes or file paths) or embeddings.

The same readers serve the single-process path and Ray (where each read task reads one shard).
Paths may be local or fsspec URLs (``s3://bucket/shards``, ``gs://...``) where the filesystem
package and credentials are present. A shard that cannot be read raises :class:`ShardError`
naming it; callers skip it and go on.

=============  =====================================================================================
format         layout
=============  =====================================================================================
files          image files and folders (searched recursively), cut into shards of ``shard_size``
csv            a ``path,label`` manifest (read as :func:`coderclip.datasets.from_csv` reads it)
webdataset     tar shards as img2dataset writes them: ``{key}.jpg`` beside ``{key}.txt/.json``
parquet        Parquet files with an image-bytes column (``jpg``, ``png``, ``image``...) or a path
               column (``path``, ``image_path``...), and optionally a ``key`` column
embeddings     clip-retrieval's output: ``img_emb/img_emb_N.npy`` + ``metadata/metadata_N.parquet``
=============  =====================================================================================
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import posixpath
import re
import tarfile
from collections.abc import Iterator, Sequence

import numpy as np

from ..errors import ConfigError, ImageReadError, ShardError

FORMATS = ("files", "csv", "webdataset", "parquet", "embeddings")
#: Image files per shard when a path list is cut into shards.
DEFAULT_SHARD_SIZE = 4096
#: Column names tried, in order, for image bytes, image paths and keys in Parquet inputs.
BYTES_COLUMNS = ("jpg", "jpeg", "png", "webp", "image", "img", "image_bytes", "bytes")
PATH_COLUMNS = ("path", "image_path", "filepath", "file_path", "file", "filename")
KEY_COLUMNS = ("key", "__key__", "id", "image_id", "uid")
#: Metadata columns that name an embedding row in clip-retrieval's layout, in order of preference.
EMBEDDING_KEY_COLUMNS = ("key", "image_path", "url", "id")
TAR_IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif", "ppm")


@dataclasses.dataclass(frozen=True)
class Shard:
    """One unit of work: a file (tar, Parquet, ``.npy``) or a slice of a path list.

    ``name`` is unique within a job and names the output shard and the manifest entry.
    """

    name: str
    format: str
    url: str = ""
    paths: tuple[str, ...] = ()
    metadata_url: str = ""

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Shard:
        d = json.loads(text)
        d["paths"] = tuple(d.get("paths", ()))
        return cls(**d)


@dataclasses.dataclass
class Batch:
    """Up to ``batch_size`` consecutive items of one shard.

    ``images[i]`` is encoded image bytes, a path/URL, or ``None`` when the record has no image;
    ``embeddings`` ``[n, D]`` float32 for precomputed inputs.
    """

    keys: list[str]
    images: list[bytes | str | None] | None = None
    embeddings: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.keys)


def require(*modules: str) -> None:
    """Fail in one line, with the command that installs them, when optional packages are missing."""
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"this needs {', '.join(missing)}, which are not installed: "
                          "pip install 'coderclip[ray]'")


# ---------------------------------------------------------------------------------- file systems
def _fs(url: str):
    import fsspec

    return fsspec.core.url_to_fs(url)


def _join(base: str, name: str) -> str:
    return posixpath.join(base, name) if "://" in base else os.path.join(base, name)


def _unstrip(fs, path: str) -> str:
    """A path from ``fs.glob`` back as a URL the same filesystem opens."""
    proto = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    return path if proto in ("file", "local") else f"{proto}://{path}"


def _list(url: str, suffix: str) -> list[str]:
    """Files ending in ``suffix`` at ``url``: the file itself, or a folder's direct children."""
    fs, path = _fs(url)
    if not fs.exists(path):
        raise ConfigError(f"input {url!r} does not exist")
    if fs.isdir(path):
        found = sorted(p for p in fs.glob(posixpath.join(path, f"*{suffix}")) if fs.isfile(p))
        return [_unstrip(fs, p) for p in found]
    return [url] if url.endswith(suffix) else []


def _stem(url: str) -> str:
    base = posixpath.basename(url.rstrip("/"))
    return base.split(".", 1)[0] or base


def _unique_names(names: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}-{seen[n] - 1}")
    return out


# ---------------------------------------------------------------------------------- shard lists
def detect_format(inputs: Sequence[str]) -> str:
    """Guess the format of ``inputs`` from names: ``.tar`` shards, ``.parquet`` files, a folder
    with ``img_emb/``, a ``.csv`` manifest, else image files."""
    if len(inputs) == 1:
        url = str(inputs[0])
        fs, path = _fs(url)
        if url.endswith(".csv"):
            return "csv"
        if url.endswith(".tar"):
            return "webdataset"
        if url.endswith(".parquet"):
            return "parquet"
        if fs.isdir(path):
            if fs.isdir(posixpath.join(path, "img_emb")):
                return "embeddings"
            if fs.glob(posixpath.join(path, "*.tar")):
                return "webdataset"
            if fs.glob(posixpath.join(path, "*.parquet")):
                return "parquet"
    return "files"


def list_shards(inputs: Sequence[str | os.PathLike], fmt: str = "auto",
                shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """The shards of ``inputs`` in a stable order (the order output rows and manifests follow)."""
    inputs = [str(i) for i in inputs]
    if not inputs:
        raise ConfigError("no inputs given")
    if fmt == "auto":
        fmt = detect_format(inputs)
    if fmt not in FORMATS:
        raise ConfigError(f"unknown input format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if fmt in ("files", "csv"):
        return path_shards(_image_paths(inputs, fmt), shard_size)
    if fmt == "embeddings":
        return [s for url in inputs for s in _embedding_shards(url)]
    suffix = ".tar" if fmt == "webdataset" else ".parquet"
    urls = [u for url in inputs for u in _list(url, suffix)]
    if not urls:
        raise ConfigError(f"no {suffix} files in {', '.join(map(repr, inputs))}")
    return [Shard(name, fmt, url) for name, url in zip(_unique_names([_stem(u) for u in urls]), urls)]


def _image_paths(inputs: list[str], fmt: str) -> list[str]:
    if fmt == "csv":
        from ..datasets import from_csv

        return [str(p) for url in inputs for p in from_csv(url).paths]
    from ..images import find_images

    paths = [str(p) for p in find_images(inputs)]
    if not paths:
        raise ConfigError(f"no image files found in {', '.join(map(repr, inputs))}")
    return paths


def path_shards(paths: Sequence[str | os.PathLike], shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """A list of image paths cut into shards of ``shard_size`` (named ``part-00000``, ...)."""
    if shard_size < 1:
        raise ConfigError(f"shard size must be at least 1, got {shard_size}")
    paths = [str(p) for p in paths]
    width = max(5, len(str(max(0, (len(paths) - 1) // shard_size))))
    return [Shard(f"part-{i // shard_size:0{width}d}", "files", paths=tuple(paths[i:i + shard_size]))
            for i in range(0, len(paths), shard_size)]


def _embedding_shards(url: str) -> list[Shard]:
    fs, path = _fs(url)
    emb_dir = posixpath.join(path, "img_emb")
    if not fs.isdir(emb_dir):
        raise ConfigError(f"{url!r} has no img_emb/ folder (expected clip-retrieval's layout: "
                          "img_emb/img_emb_N.npy and metadata/metadata_N.parquet)")
    npys = [p for p in fs.glob(posixpath.join(emb_dir, "img_emb_*.npy"))]
    number = re.compile(r"img_emb_(\d+)\.npy$")
    npys = sorted((p for p in npys if number.search(p)), key=lambda p: int(number.search(p).group(1)))
    if not npys:
        raise ConfigError(f"no img_emb/img_emb_N.npy files under {url!r}")
    out = []
    for p in npys:
        n = number.search(p).group(1)
        meta = posixpath.join(path, "metadata", f"metadata_{n}.parquet")
        out.append(Shard(f"img_emb_{n}", "embeddings", _unstrip(fs, p),
                         metadata_url=_unstrip(fs, meta) if fs.exists(meta) else ""))
    return out


# ---------------------------------------------------------------------------------- readers
def read_shard(shard: Shard, batch_size: int = 64, embed_dim: int | None = None) -> Iterator[Batch]:
    """Stream ``shard`` in batches of ``batch_size`` items (the last may be shorter).

    Raises :class:`ShardError` naming the shard when it is unreadable or inconsistent (for
    embeddings: a dimension other than ``embed_dim``); batches already yielded stay valid
    but the caller should treat the shard as failed.
    """
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    reader = READERS.get(shard.format)
    if reader is None:
        raise ConfigError(f"unknown shard format {shard.format!r}")
    try:
        yield from reader(shard, batch_size, embed_dim)
    except ShardError:
        raise
    except (OSError, EOFError, ValueError, tarfile.TarError, KeyError) as e:
        raise ShardError(f"shard {shard.name} ({shard.url or 'path list'}): cannot read it "
                         f"({type(e).__name__}: {e}); skipped") from e
    except Exception as e:  # pyarrow raises its own types (ArrowInvalid is a ValueError, others not)
        if type(e).__module__.startswith("pyarrow"):
            raise ShardError(f"shard {shard.name} ({shard.url}): not a readable Parquet file "
                             f"({type(e).__name__}: {e}); skipped") from e
        raise


def read_files(shard: Shard, batch_size: int, embed_dim: int | None = None) -> Iterator[Batch]:
    """A slice of a path list: the keys are the paths themselves."""
    for i in range(0, len(shard.paths), batch_size):
        chunk = list(shard.paths[i:i + batch_size])
        yield Batch(keys=chunk, images=list(chunk))


def read_webdataset(shard: Shard, batch_size: int, embed_dim: int | None = None) -> Iterator[Batch]:
    """A WebDataset tar: files sharing a key (the name up to the first dot) form one record."""
    fs, path = _fs(shard.url)
    keys: list[str] = []
    images: list[bytes | None] = []
    with fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r|*") as tar:
        current = None
        end = 0
        for member in tar:
            end = member.offset_data + -(-member.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE
            if not member.isfile():
                continue
            folder, base = posixpath.split(member.name)
            if base.startswith("."):
                continue
            stem, _, ext = base.partition(".")
            key = posixpath.join(folder, stem) if folder else stem
            if key != current:
                if len(keys) == batch_size:
                    yield Batch(keys, images)
                    keys, images = [], []
                current = key
                keys.append(key)
                images.append(None)
            if images[-1] is None and ext.lower() in TAR_IMAGE_EXTS:
                images[-1] = tar.extractfile(member).read()
        # tarfile takes a damaged header after the first record for the end of the archive:
        # only zero padding may follow the last record, else the shard is corrupt
        f.seek(end)
        while chunk := f.read(1 << 20):
            if chunk.strip(b"\0"):
                raise ShardError(f"shard {shard.name} ({shard.url}): damaged tar header after "
                                 f"record {current!r}; skipped")
    if keys:
        yield Batch(keys, images)


def read_parquet(shard: Shard, batch_size: int, embed_dim: int | None = None) -> Iterator[Batch]:
    """A Parquet file with image bytes or image paths per row (and optionally a key column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, path = _fs(shard.url)
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        schema = pf.schema_arrow
        names = schema.names
        image_col = next((c for c in BYTES_COLUMNS if c in names and _is_bytes(schema.field(c).type)), None)
        path_col = next((c for c in PATH_COLUMNS if c in names), None)
        key_col = next((c for c in KEY_COLUMNS if c in names), None)
        if image_col is None and path_col is None:
            raise ShardError(f"shard {shard.name} ({shard.url}): no image column; expected image bytes "
                             f"in one of {', '.join(BYTES_COLUMNS)} or paths in one of "
                             f"{', '.join(PATH_COLUMNS)} (found {', '.join(names)}); skipped")
        cols = [c for c in (key_col, image_col or path_col) if c]
        base = posixpath.dirname(shard.url)
        row = 0
        for rb in pf.iter_batches(batch_size=batch_size, columns=list(dict.fromkeys(cols))):
            data = rb.column(image_col or path_col)
            if image_col and pa.types.is_struct(data.type):   # Hugging Face's {bytes, path} images
                data = data.field("bytes")
            values = data.to_pylist()
            if image_col is None:
                values = [v if v is None or _is_absolute(v) else _join(base, v) for v in values]
            keys = [str(k) for k in rb.column(key_col).to_pylist()] if key_col else \
                [str(v) for v in rb.column(path_col).to_pylist()] if path_col else \
                [f"{shard.name}:{row + i}" for i in range(len(values))]
            row += len(values)
            yield Batch(keys, values)


def _is_bytes(t) -> bool:
    import pyarrow as pa

    if pa.types.is_struct(t):
        return any(t.field(i).name == "bytes" for i in range(t.num_fields))
    return pa.types.is_binary(t) or pa.types.is_large_binary(t)


def _is_absolute(p: str) -> bool:
    return "://" in p or os.path.isabs(p)


def read_embeddings(shard: Shard, batch_size: int, embed_dim: int | None = None) -> Iterator[Batch]:
    """One ``img_emb_N.npy`` (read row block by row block, never whole) with its metadata keys."""
    fs, path = _fs(shard.url)
    with fs.open(path, "rb") as f:
        n, dim, dtype = _npy_header(f, shard)
        if embed_dim is not None and dim != embed_dim:
            raise ShardError(f"shard {shard.name} ({shard.url}): embeddings are {dim}-d but the model "
                             f"makes {embed_dim}-d embeddings; skipped")
        keys = _embedding_keys(shard, n, batch_size)
        row_bytes = dim * dtype.itemsize
        for start in range(0, n, batch_size):
            m = min(batch_size, n - start)
            buf = f.read(m * row_bytes)
            if len(buf) != m * row_bytes:
                raise ShardError(f"shard {shard.name} ({shard.url}): file ends after "
                                 f"{start + len(buf) // row_bytes} of {n} rows; skipped")
            x = np.frombuffer(buf, dtype=dtype).reshape(m, dim).astype(np.float32)
            yield Batch(next(keys), embeddings=x)


def _npy_header(f, shard: Shard) -> tuple[int, int, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = fmt.read_array_header_2_0(f)
    except ValueError as e:
        raise ShardError(f"shard {shard.name} ({shard.url}): not a .npy file ({e}); skipped") from None
    if len(shape) != 2 or fortran or dtype.kind != "f":
        raise ShardError(f"shard {shard.name} ({shard.url}): expected a C-ordered float array "
                         f"[N, D], found shape {shape} dtype {dtype}; skipped")
    return int(shape[0]), int(shape[1]), dtype


def _embedding_keys(shard: Shard, n: int, batch_size: int) -> Iterator[list[str]]:
    """Keys in batches: from the metadata Parquet (``key``, ``image_path``, ``url``...) where
    there is one, else ``<shard>:<row>``."""
    if not shard.metadata_url:
        for start in range(0, n, batch_size):
            yield [f"{shard.name}:{i}" for i in range(start, min(n, start + batch_size))]
        return
    import pyarrow.parquet as pq

    fs, path = _fs(shard.metadata_url)
    with fs.open(path, "rb") as f:
        pf = pq.ParquetFile(f)
        rows = pf.metadata.num_rows
        if rows != n:
            raise ShardError(f"shard {shard.name}: {n} embeddings but {rows} metadata rows in "
                             f"{shard.metadata_url}; skipped")
        col = next((c for c in EMBEDDING_KEY_COLUMNS if c in pf.schema_arrow.names), None)
        if col is None:
            for start in range(0, n, batch_size):
                yield [f"{shard.name}:{i}" for i in range(start, min(n, start + batch_size))]
            return
        pending: list[str] = []
        for rb in pf.iter_batches(batch_size=batch_size, columns=[col]):
            pending.extend(str(v) for v in rb.column(0).to_pylist())
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
        if pending:
            yield pending


READERS = {"files": read_files, "csv": read_files, "webdataset": read_webdataset,
           "parquet": read_parquet, "embeddings": read_embeddings}


# ---------------------------------------------------------------------------------- decoding
def read_image(item: bytes | str | None, key: str):
    """One RGB PIL image from encoded bytes or a local path / URL; :class:`ImageReadError`
    names ``key`` when it cannot be decoded."""
    from ..images import load_image

    if item is None:
        raise ImageReadError(f"{key}: the record has no image")
    if isinstance(item, (bytes, bytearray, memoryview)):
        try:
            return load_image(io.BytesIO(item))
        except ImageReadError as e:
            raise ImageReadError(f"{key}: {str(e).split(': ', 1)[-1]}") from None
    if "://" in item:
        try:
            fs, path = _fs(item)
            with fs.open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ImageReadError(f"{key}: cannot open {item} ({e})") from None
        return read_image(data, key)
    return load_image(item)
