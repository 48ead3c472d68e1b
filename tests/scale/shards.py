"""Real shards in the formats large image collections come in, written the way their tools write
them (tar files through tarfile, Parquet through pyarrow, .npy through numpy)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np


def jpeg_bytes(seed: int, size: int = 24) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def write_tar(path: Path, keys: list[str], broken: set[str] = frozenset()) -> Path:
    """An img2dataset-style WebDataset shard: {key}.jpg, {key}.txt, {key}.json per record."""
    with tarfile.open(path, "w") as tar:
        for i, key in enumerate(keys):
            image = b"not a jpeg" if key in broken else jpeg_bytes(hash(key) % 2**32)
            members = {f"{key}.jpg": image, f"{key}.txt": f"caption {i}".encode(),
                       f"{key}.json": json.dumps({"key": key, "caption": f"caption {i}"}).encode()}
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def webdataset_folder(root: Path, shards: int = 3, per_shard: int = 5) -> Path:
    """A folder as img2dataset leaves it: NNNNN.tar with NNNNN.parquet metadata beside."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root.mkdir(parents=True, exist_ok=True)
    for s in range(shards):
        keys = [f"{s:05d}{i:04d}" for i in range(per_shard)]
        write_tar(root / f"{s:05d}.tar", keys)
        pq.write_table(pa.table({"key": keys, "caption": [f"c{k}" for k in keys],
                                 "status": ["success"] * len(keys)}), root / f"{s:05d}.parquet")
    return root


def write_parquet_images(path: Path, keys: list[str], column: str = "jpg") -> Path:
    """img2dataset's parquet output: key, jpg (image bytes), caption."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"key": keys, column: [jpeg_bytes(hash(k) % 2**32) for k in keys],
                             "caption": [f"c{k}" for k in keys]}), path, row_group_size=3)
    return path


def embeddings_folder(root: Path, sizes: list[int], dim: int, seed: int = 0,
                      dtype=np.float16) -> Path:
    """clip-retrieval's inference output: img_emb/img_emb_N.npy + metadata/metadata_N.parquet."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    (root / "img_emb").mkdir(parents=True, exist_ok=True)
    (root / "metadata").mkdir(exist_ok=True)
    for n, size in enumerate(sizes):
        x = rng.normal(size=(size, dim))
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        np.save(root / "img_emb" / f"img_emb_{n}.npy", x.astype(dtype))
        pq.write_table(pa.table({"image_path": [f"/data/{n}/{i}.jpg" for i in range(size)],
                                 "caption": [f"c{i}" for i in range(size)]}),
                       root / "metadata" / f"metadata_{n}.parquet")
    return root
