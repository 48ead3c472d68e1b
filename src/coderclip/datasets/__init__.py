"""Labelled image collections: :class:`ImageDataset` (labels only through ``labels()``), image
folders and CSV manifests (:mod:`.base`), and the standard benchmarks as a table
(:mod:`.registry`, :data:`LOADERS`)."""

from .base import ImageDataset, Labels, from_csv, from_folder, open_dataset
from .registry import DATASETS, LOADERS, load

__all__ = ["DATASETS", "LOADERS", "ImageDataset", "Labels", "from_csv", "from_folder", "load", "open_dataset"]
