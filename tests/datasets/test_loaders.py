"""Each standard loader on a tiny fake copy of its on-disk layout: names in label order, every
split's (path, label) pairs, the held-out val split, and precise errors for broken copies."""

from __future__ import annotations

import numpy as np
import pytest

from coderclip.datasets import LOADERS
from coderclip.datasets import DATASETS
from coderclip.datasets._layout import SPLITS
from coderclip.errors import DatasetError

from . import fakes

#: case -> (registry key, builder)
CASES = {
    "caltech101": ("caltech101", fakes.caltech101),
    "eurosat": ("eurosat", fakes.eurosat),
    "ucf101": ("ucf101", fakes.ucf101),
    "dtd-coop": ("dtd", fakes.dtd_coop),
    "dtd-official": ("dtd", fakes.dtd_official),
    "food101-coop": ("food101", fakes.food101_coop),
    "food101-official": ("food101", fakes.food101_official),
    "oxford_pets-coop": ("oxford_pets", fakes.oxford_pets_coop),
    "oxford_pets-official": ("oxford_pets", fakes.oxford_pets_official),
    "flowers102-coop": ("flowers102", fakes.flowers102_coop),
    "flowers102-official": ("flowers102", fakes.flowers102_official),
    "stanford_cars-coop": ("stanford_cars", fakes.stanford_cars_coop),
    "stanford_cars-official": ("stanford_cars", fakes.stanford_cars_official),
    "sun397-coop": ("sun397", fakes.sun397_coop),
    "sun397-official": ("sun397", fakes.sun397_official),
    "fgvc_aircraft": ("fgvc_aircraft", fakes.fgvc_aircraft),
    "cub200": ("cub200", fakes.cub200),
    "places365": ("places365", fakes.places365),
    "imagenet": ("imagenet", fakes.imagenet),
    "imagenet_v2": ("imagenet_v2", fakes.imagenet_v2),
}


def _pairs(ds) -> list[tuple[str, int]]:
    return sorted(zip(map(str, ds.paths), ds.labels().tolist()))


def _expected(pairs) -> list[tuple[str, int]]:
    return sorted((str(p), int(lab)) for p, lab in pairs)


_BUILT: dict = {}


@pytest.fixture
def built(fast_tmp_factory):
    """One fake copy per case for the whole module (tests that break a copy restore it)."""
    def get(case):
        if case.endswith("-official") and case.split("-")[0] in ("flowers102", "stanford_cars"):
            pytest.importorskip("scipy.io")  # the official .mat files need SciPy
        if case not in _BUILT:
            _BUILT[case] = CASES[case][1](fast_tmp_factory(case) / "data")
        return _BUILT[case]
    return get


@pytest.mark.parametrize("case", CASES)
def test_loader_reads_every_split(case, built):
    key, _ = CASES[case]
    exp = built(case)
    top = exp.root
    while top.name != "data":
        top = top.parent
    loader = LOADERS[key]
    seen = {}
    for split in SPLITS:
        if split not in exp.splits and "trainval" not in exp.splits:
            with pytest.raises(DatasetError, match=f"no split {split!r}"):
                loader(top, split=split)
            continue
        ds = loader(top, split=split)  # the parent folder is accepted as root
        assert (ds.name, ds.split, ds.domain) == (key, split, DATASETS[key].domain)
        assert ds.class_names == exp.names and len(ds.class_names) == DATASETS[key].n_classes
        assert all(p.is_file() for p in ds.paths)
        seen[split] = _pairs(ds)
        if split in exp.splits:
            assert seen[split] == _expected(exp.splits[split])
    if "trainval" in exp.splits:  # no official val split: val is held out of the training list
        train, val = set(seen["train"]), set(seen["val"])
        assert train | val == set(_expected(exp.splits["trainval"]))
        assert not train & val
        counts = np.bincount([lab for _, lab in exp.splits["trainval"]])
        # every class with two or more training images gives at least one to val
        assert {lab for _, lab in val} == set(np.flatnonzero(counts >= 2).tolist())
    # the dataset's folder itself works as root too
    assert _pairs(loader(exp.root, split="test")) == seen["test"]


@pytest.mark.parametrize("case", CASES)
def test_loader_missing_folder_names_the_layout(case, fast_tmp):
    key, _ = CASES[case]
    with pytest.raises(DatasetError) as e:
        LOADERS[key](fast_tmp / "absent")
    msg = str(e.value)
    assert "does not exist" in msg and str(fast_tmp / "absent") in msg
    assert "Expected layout" in msg and DATASETS[key].layout in msg


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("imagenet")])
def test_loader_reports_listed_image_that_is_absent(case, built):
    key, _ = CASES[case]
    exp = built(case)
    data = exp.listed.read_bytes()
    exp.listed.unlink()
    errors = []
    try:
        for split in SPLITS:
            try:
                LOADERS[key](exp.root, split=split)
            except DatasetError as e:
                errors.append(str(e))
    finally:
        exp.listed.write_bytes(data)
    assert len(errors) == 1, errors  # exactly the split that lists the image fails
    assert "1 of the" in errors[0] and "missing" in errors[0] and exp.listed.name in errors[0]


@pytest.mark.parametrize("case", [c for c in CASES if not c.startswith("imagenet")])
def test_loader_reports_missing_split_file(case, built):
    key, _ = CASES[case]
    exp = built(case)
    aside = exp.split_file.with_name(exp.split_file.name + ".aside")
    exp.split_file.rename(aside)
    try:
        with pytest.raises(DatasetError) as e:
            LOADERS[key](exp.root, split="test")
    finally:
        aside.rename(exp.split_file)
    assert exp.split_file.name in str(e.value)


def test_imagenet_wrong_folder_count_and_unsorted_val(fast_tmp):
    for i in range(999):
        (fast_tmp / "data" / "val" / f"n{i:08d}").mkdir(parents=True)
    with pytest.raises(DatasetError, match="has 999 class folders, expected 1000"):
        LOADERS["imagenet"](fast_tmp / "data")
    flat = fast_tmp / "flat"
    fakes.write_image(flat / "val" / "ILSVRC2012_val_00000001.JPEG")
    with pytest.raises(DatasetError, match="not sorted into class folders"):
        LOADERS["imagenet"](flat)
    with pytest.raises(DatasetError, match="no split 'train'"):
        LOADERS["imagenet_v2"](fast_tmp, split="train")


def test_split_file_with_wrong_class_count_or_order(fast_tmp):
    import json

    exp = fakes.eurosat(fast_tmp / "data")
    f = exp.split_file
    data = json.loads(f.read_text())
    data["test"] = [it for it in data["test"] if it[1] != 9]
    for s in ("train", "val"):
        data[s] = [it for it in data[s] if it[1] != 9]
    f.write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="defines 9 classes, expected 10"):
        LOADERS["eurosat"](exp.root)
    # a split file whose names sit at other labels than the shipped list's: refuse
    exp = fakes.dtd_coop(fast_tmp / "dtd")
    data = json.loads(exp.split_file.read_text())
    swap = {0: 1, 1: 0}
    for items in data.values():
        for it in items:
            it[1] = swap.get(it[1], it[1])
    exp.split_file.write_text(json.dumps(data))
    from coderclip.knowledge.packs import shipped_class_names

    try:
        shipped_class_names("dtd")
    except DatasetError:
        pytest.skip("no shipped dtd class list")
    with pytest.raises(DatasetError, match="label order differs"):
        LOADERS["dtd"](exp.root)


@pytest.mark.parametrize("key", ["cifar10", "cifar100"])
def test_cifar_binary_is_decoded_once_into_the_cache(key, fast_tmp):
    exp = fakes.cifar_binary(fast_tmp / "data", key)
    test = LOADERS[key](fast_tmp / "data", split="test")
    assert test.class_names == exp.names
    assert test.labels().tolist() == [lab for _, lab in exp.splits["test"]]
    from PIL import Image

    for i in (0, 3, len(test) - 1):  # records are decoded in file order, pixel value = index
        with Image.open(test.paths[i]) as im:
            assert np.asarray(im)[0, 0, 0] == i % 256 and im.size == (32, 32)
    mtime = test.paths[0].stat().st_mtime_ns
    again = LOADERS[key](exp.root, split="test")
    assert again.paths == test.paths and again.paths[0].stat().st_mtime_ns == mtime
    train, val = LOADERS[key](exp.root, split="train"), LOADERS[key](exp.root, split="val")
    assert len(train) + len(val) == len(exp.splits["trainval"]) and len(val) > 0
    (exp.root / exp.split_file.name).write_bytes(b"\0" * 100)
    with pytest.raises(DatasetError, match="not a whole number of"):
        LOADERS[key](exp.root)


def test_cifar_image_folder_export_and_pickle_version(fast_tmp):
    names = fakes.shipped_or_generic("cifar10", 10)
    for split in ("train", "test"):
        for label, n in enumerate(names):
            for j in range(2):
                fakes.write_image(fast_tmp / "export" / split / fakes.folder(n) / f"{j}.png", j)
    ds = LOADERS["cifar10"](fast_tmp / "export")
    assert ds.class_names == fakes.expected_names("cifar10", [fakes.folder(n) for n in names])
    assert sorted(ds.labels().tolist()) == sorted(list(range(10)) * 2)
    from coderclip.names import normalize_name

    assert all(normalize_name(p.parent.name) == normalize_name(ds.class_names[lab])
               for p, lab in zip(ds.paths, ds.labels()))
    (fast_tmp / "py" / "cifar-10-batches-py").mkdir(parents=True)
    (fast_tmp / "py" / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"\x80\x04")
    with pytest.raises(DatasetError, match="pickle"):
        LOADERS["cifar10"](fast_tmp / "py" / "cifar-10-batches-py")


def test_folder_and_csv_loaders(fast_tmp):
    for split in ("train", "test"):
        for c in ("cat", "dog"):
            fakes.write_image(fast_tmp / "f" / split / c / f"{split}.png")
    ds = LOADERS["folder"](fast_tmp / "f", split="train")
    assert ds.class_names == ["cat", "dog"] and ds.split == "train" and len(ds) == 2
    with pytest.raises(DatasetError, match="no 'val'"):
        LOADERS["folder"](fast_tmp / "f", split="val")
    fakes.write_image(fast_tmp / "g" / "cat" / "a.png")
    assert LOADERS["folder"](fast_tmp / "g").class_names == ["cat"]
    (fast_tmp / "m.csv").write_text("path,label\nf/test/cat/test.png,cat\nf/test/dog/test.png,dog\n")
    ds = LOADERS["csv"](fast_tmp / "m.csv")
    assert ds.split == "test" and ds.labels().tolist() == [0, 1]
    with pytest.raises(DatasetError, match="val.csv"):
        LOADERS["csv"](fast_tmp / "m.csv", split="val")


def test_holdout_is_deterministic_and_per_class():
    from coderclip.datasets._layout import holdout

    keys = [f"img{i}" for i in range(40)]
    labels = [i % 2 for i in range(40)]
    val = holdout(keys, labels, "val")
    assert val == holdout(list(keys), list(labels), "val")
    assert sorted(val + holdout(keys, labels, "train")) == list(range(40))
    assert sorted(labels[i] for i in val) == [0, 0, 1, 1]  # 10% of 20 per class
    assert holdout(["a"], [0], "val") == []  # a lone image stays in train
    assert len(holdout(keys, [0] * 40, "val", max_per_class=2)) == 2
    assert set(holdout(keys, [0] * 40, "val", max_per_class=2)) <= set(holdout(keys, [0] * 40, "val"))


def test_place_names():
    from coderclip.datasets._layout import place_name

    assert place_name("/a/apse/indoor") == "indoor apse"
    assert place_name("/b/bakery/shop") == "shop bakery"
    assert place_name("/a/airfield") == "airfield"
    assert place_name("/s/ski_slope") == "ski slope"


def test_docs_and_cli_help_name_every_loader():
    from pathlib import Path

    from coderclip.cli.benchmark import EXAMPLES

    doc = (Path(__file__).parents[2] / "docs" / "benchmark.md").read_text()
    for key, info in DATASETS.items():
        assert f"| `{key}` |" in doc, key
        assert key in EXAMPLES, key
        assert LOADERS[key] is not None
    assert set(DATASETS) == set(LOADERS)


@pytest.mark.parametrize("case", ["imagenet", "imagenet_v2"])
def test_benchmark_uses_the_shipped_imagenet_pack(case, built):
    """`coderclip benchmark --dataset imagenet|imagenet_v2` aligns the shipped `imagenet` pack."""
    from pathlib import Path

    from coderclip.evaluation.suite import resolve_knowledge

    key, _ = CASES[case]
    ds = LOADERS[key](built(case).root, split="test")
    kn, path, source = resolve_knowledge(None, ds, pack_name=key)
    assert Path(path).name == "imagenet.json" and source == key
    assert kn.class_names == ds.class_names and len(kn) == 1000
    assert kn.counts()["attributes"] >= 5000 and kn.counts()["contrast_pairs"] > 2000
