"""Tiny fake copies of the standard datasets' on-disk layouts.

Each builder writes a few small images per class under ``root`` and returns an :class:`Expect`:
the class names the loader must report and, per split, the (image path, label) pairs it must
list. ``trainval`` stands for an official training list that the loader divides into train and
val itself (datasets without an official val split).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import numpy as np

from coderclip.datasets._layout import place_name
from coderclip.errors import DatasetError


def _png(seed: int, size: int = 8) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


_IMAGES = [_png(i) for i in range(16)]


def write_image(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_IMAGES[seed % len(_IMAGES)])
    return path


def shipped_or_generic(key: str, n: int) -> list[str]:
    """The shipped class list when there is one (so the fake's raw names match it), else
    ``class_0 ..``; the loader must report the same either way."""
    from coderclip.knowledge.packs import shipped_class_names

    try:
        names = shipped_class_names(key)
    except DatasetError:
        return [f"class_{i:03d}" for i in range(n)]
    assert len(names) == n
    return names


def expected_names(key: str, raw: list[str]) -> list[str]:
    from coderclip.knowledge.packs import shipped_class_names

    try:
        return shipped_class_names(key)
    except DatasetError:
        return [" ".join(r.replace("_", " ").split()) for r in raw]


def folder(name: str) -> str:
    return name.replace(" ", "_").replace("/", "_")


@dataclasses.dataclass
class Expect:
    names: list[str]
    splits: dict[str, list[tuple[Path, int]]]
    root: Path
    #: one file listed in some split, for the "listed image missing" test
    listed: Path | None = None
    #: the split or metadata file whose absence the loader must report by name
    split_file: Path | None = None


PER_SPLIT = {"train": 2, "val": 1, "test": 1}


def _split_zhou(root: Path, json_name: str, image_dir: Path, key: str, n: int, rel) -> Expect:
    """CoOp layout: ``image_dir / rel(class_folder, name, split, j)`` listed in ``json_name``."""
    raw = shipped_or_generic(key, n)
    data, splits = {}, {}
    seed = 0
    for split, k in PER_SPLIT.items():
        items, exp = [], []
        for label, name in enumerate(raw):
            for j in range(k):
                r = rel(folder(name), split, j)
                write_image(image_dir / r, seed)
                seed += 1
                items.append([r, label, name])
                exp.append((image_dir / r, label))
        data[split], splits[split] = items, exp
    (root / json_name).write_text(json.dumps(data))
    return Expect(expected_names(key, raw), splits, root, listed=splits["test"][0][0],
                  split_file=root / json_name)


def caltech101(root: Path) -> Expect:
    return _split_zhou(root, "split_zhou_Caltech101.json", root / "101_ObjectCategories", "caltech101",
                       100, lambda c, s, j: f"{c}/image_{s}{j:04d}.jpg")


def eurosat(root: Path) -> Expect:
    return _split_zhou(root, "split_zhou_EuroSAT.json", root / "2750", "eurosat", 10,
                       lambda c, s, j: f"{c}/{c}_{s}{j}.jpg")


def ucf101(root: Path) -> Expect:
    return _split_zhou(root, "split_zhou_UCF101.json", root / "UCF-101-midframes", "ucf101", 101,
                       lambda c, s, j: f"{c}/v_{c}_g0{j}_c0{s[:2]}.jpg")


def dtd_coop(root: Path) -> Expect:
    return _split_zhou(root, "split_zhou_DescribableTextures.json", root / "images", "dtd", 47,
                       lambda c, s, j: f"{c}/{c}_{s}{j:04d}.jpg")


def food101_coop(root: Path) -> Expect:
    return _split_zhou(root, "split_zhou_Food101.json", root / "images", "food101", 101,
                       lambda c, s, j: f"{c}/{s}{j}.jpg")


def oxford_pets_coop(root: Path) -> Expect:
    return _split_zhou(root, "split_zhou_OxfordPets.json", root / "images", "oxford_pets", 37,
                       lambda c, s, j: f"{c}_{s}{j}.jpg")


def flowers102_coop(root: Path) -> Expect:
    counter = iter(range(1, 10_000))
    return _split_zhou(root, "split_zhou_OxfordFlowers.json", root / "jpg", "flowers102", 102,
                       lambda c, s, j: f"image_{next(counter):05d}.jpg")


def stanford_cars_coop(root: Path) -> Expect:
    counter = iter(range(1, 10_000))
    return _split_zhou(root, "split_zhou_StanfordCars.json", root, "stanford_cars", 196,
                       lambda c, s, j: f"cars_{'test' if s == 'test' else 'train'}/{next(counter):05d}.jpg")


def sun397_coop(root: Path) -> Expect:
    cats = [f"/{chr(97 + i % 26)}/place_{i:03d}" + ("/indoor" if i % 5 == 0 else "") for i in range(397)]
    (root / "SUN397").mkdir(parents=True)
    (root / "SUN397" / "ClassName.txt").write_text("\n".join(cats) + "\n")
    names = [place_name(c) for c in cats]
    data, splits = {}, {}
    for split, k in PER_SPLIT.items():
        items, exp = [], []
        for label, c in enumerate(cats):
            for j in range(k):
                r = f"{c.strip('/')}/sun_{split}{j}.jpg"
                write_image(root / "SUN397" / r)
                items.append([r, label, names[label]])
                exp.append((root / "SUN397" / r, label))
        data[split], splits[split] = items, exp
    (root / "split_zhou_SUN397.json").write_text(json.dumps(data))
    return Expect(names, splits, root, listed=splits["val"][0][0], split_file=root / "split_zhou_SUN397.json")


def sun397_official(root: Path) -> Expect:
    cats = [f"/{chr(97 + i % 26)}/place_{i:03d}" + ("/outdoor" if i % 7 == 0 else "") for i in range(397)]
    (root / "SUN397").mkdir(parents=True)
    (root / "SUN397" / "ClassName.txt").write_text("\n".join(cats) + "\n")
    lists = {"Training_01.txt": ("trainval", 3), "Testing_01.txt": ("test", 1)}
    splits = {}
    for fname, (split, k) in lists.items():
        lines, exp = [], []
        for label, c in enumerate(cats):
            for j in range(k):
                r = f"{c}/sun_{split}{j}.jpg"
                write_image(root / "SUN397" / r.lstrip("/"))
                lines.append(r)
                exp.append((root / "SUN397" / r.lstrip("/"), label))
        (root / "Partitions").mkdir(exist_ok=True)
        (root / "Partitions" / fname).write_text("\n".join(lines) + "\n")
        splits[split] = exp
    return Expect([place_name(c) for c in cats], splits, root, listed=splits["test"][5][0],
                  split_file=root / "Partitions" / "Testing_01.txt")


def dtd_official(root: Path) -> Expect:
    raw = [folder(n) for n in shipped_or_generic("dtd", 47)]
    splits = {}
    for split, k in PER_SPLIT.items():
        lines, exp = [], []
        for label, c in enumerate(raw):
            for j in range(k):
                r = f"{c}/{c}_{split}{j}.jpg"
                write_image(root / "images" / r)
                lines.append(r)
                exp.append((root / "images" / r, label))
        (root / "labels").mkdir(exist_ok=True)
        (root / "labels" / f"{split}1.txt").write_text("\n".join(lines) + "\n")
        splits[split] = exp
    return Expect(expected_names("dtd", raw), splits, root, listed=splits["test"][0][0],
                  split_file=root / "labels" / "test1.txt")


def food101_official(root: Path) -> Expect:
    raw = [folder(n) for n in shipped_or_generic("food101", 101)]
    (root / "meta").mkdir(parents=True)
    (root / "meta" / "classes.txt").write_text("\n".join(raw) + "\n")
    splits = {}
    for fname, split, k in (("train.txt", "trainval", 3), ("test.txt", "test", 1)):
        lines, exp = [], []
        for label, c in enumerate(raw):
            for j in range(k):
                r = f"{c}/{100 * label + j}{split[:2]}"
                write_image(root / "images" / f"{r}.jpg")
                lines.append(r)
                exp.append((root / "images" / f"{r}.jpg", label))
        (root / "meta" / fname).write_text("\n".join(lines) + "\n")
        splits[split] = exp
    return Expect(expected_names("food101", raw), splits, root, listed=splits["trainval"][3][0],
                  split_file=root / "meta" / "test.txt")


def oxford_pets_official(root: Path) -> Expect:
    raw = [folder(n) for n in shipped_or_generic("oxford_pets", 37)]
    splits = {}
    (root / "annotations").mkdir(parents=True)
    for fname, split, k in (("trainval.txt", "trainval", 3), ("test.txt", "test", 1)):
        lines, exp = [], []
        for label, c in enumerate(raw):
            for j in range(k):
                stem = f"{c}_{(100 if split == 'test' else 0) + j}"
                write_image(root / "images" / f"{stem}.jpg")
                lines.append(f"{stem} {label + 1} {1 + label % 2} {label + 1}")
                exp.append((root / "images" / f"{stem}.jpg", label))
        (root / "annotations" / fname).write_text("\n".join(lines) + "\n")
        splits[split] = exp
    return Expect(expected_names("oxford_pets", raw), splits, root, listed=splits["test"][0][0],
                  split_file=root / "annotations" / "test.txt")


def flowers102_official(root: Path) -> Expect:
    from scipy.io import savemat

    raw = shipped_or_generic("flowers102", 102)
    labels, setid, splits, image_id = [], {"trnid": [], "valid": [], "tstid": []}, {}, 0
    for split, key in (("train", "trnid"), ("val", "valid"), ("test", "tstid")):
        exp = []
        for label in range(102):
            image_id += 1
            labels.append(label + 1)
            setid[key].append(image_id)
            exp.append((write_image(root / "jpg" / f"image_{image_id:05d}.jpg"), label))
        splits[split] = exp
    savemat(str(root / "imagelabels.mat"), {"labels": np.array([labels], dtype=np.uint8)})
    savemat(str(root / "setid.mat"), {k: np.array([v], dtype=np.uint16) for k, v in setid.items()})
    (root / "cat_to_name.json").write_text(json.dumps({str(i + 1): n for i, n in enumerate(raw)}))
    return Expect(expected_names("flowers102", raw), splits, root, listed=splits["val"][0][0],
                  split_file=root / "setid.mat")


def stanford_cars_official(root: Path) -> Expect:
    from scipy.io import savemat

    raw = shipped_or_generic("stanford_cars", 196)
    (root / "devkit").mkdir(parents=True)
    savemat(str(root / "devkit" / "cars_meta.mat"), {"class_names": np.array([raw], dtype=object)})
    splits = {}
    for mat, folder_name, split, k in (("devkit/cars_train_annos.mat", "cars_train", "trainval", 2),
                                       ("cars_test_annos_withlabels.mat", "cars_test", "test", 1)):
        rec, exp, n = [], [], 0
        for label in range(196):
            for _ in range(k):
                n += 1
                fname = f"{n:05d}.jpg"
                rec.append((1, 2, 30, 40, label + 1, fname))
                exp.append((write_image(root / folder_name / fname), label))
        arr = np.array(rec, dtype=[("bbox_x1", "O"), ("bbox_y1", "O"), ("bbox_x2", "O"),
                                   ("bbox_y2", "O"), ("class", "O"), ("fname", "O")])
        savemat(str(root / mat), {"annotations": arr[None, :]})
        splits[split] = exp
    return Expect(expected_names("stanford_cars", raw), splits, root, listed=splits["test"][0][0],
                  split_file=root / "cars_test_annos_withlabels.mat")


def fgvc_aircraft(root: Path) -> Expect:
    raw = shipped_or_generic("fgvc_aircraft", 100)
    data = root / "fgvc-aircraft-2013b" / "data"
    data.mkdir(parents=True)
    (data / "variants.txt").write_text("\n".join(raw) + "\n")
    splits, image_id = {}, 1000000
    for split, k in PER_SPLIT.items():
        lines, exp = [], []
        for label, v in enumerate(raw):
            for _ in range(k):
                image_id += 1
                exp.append((write_image(data / "images" / f"{image_id}.jpg"), label))
                lines.append(f"{image_id} {v}")
        (data / f"images_variant_{split}.txt").write_text("\n".join(lines) + "\n")
        splits[split] = exp
    return Expect(list(expected_names("fgvc_aircraft", raw)), splits, data,
                  listed=splits["train"][0][0], split_file=data / "images_variant_test.txt")


def cub200(root: Path) -> Expect:
    raw = [folder(n) for n in shipped_or_generic("cub200", 200)]
    base = root / "CUB_200_2011"
    base.mkdir(parents=True)
    classes, images, labels, is_train = [], [], [], []
    splits = {"trainval": [], "test": []}
    image_id = 0
    for label, c in enumerate(raw):
        cfolder = f"{label + 1:03d}.{c}"
        classes.append(f"{label + 1} {cfolder}")
        for j in range(3):
            image_id += 1
            rel = f"{cfolder}/{c}_{j}.jpg"
            images.append(f"{image_id} {rel}")
            labels.append(f"{image_id} {label + 1}")
            train = j < 2
            is_train.append(f"{image_id} {int(train)}")
            splits["trainval" if train else "test"].append((write_image(base / "images" / rel), label))
    for fname, lines in (("classes.txt", classes), ("images.txt", images),
                         ("image_class_labels.txt", labels), ("train_test_split.txt", is_train)):
        (base / fname).write_text("\n".join(lines) + "\n")
    return Expect(expected_names("cub200", raw), splits, base, listed=splits["test"][0][0],
                  split_file=base / "train_test_split.txt")


def places365(root: Path) -> Expect:
    cats = [f"/{chr(97 + i % 26)}/scene_{i:03d}" + ("/indoor" if i % 4 == 0 else "") for i in range(365)]
    root.mkdir(parents=True, exist_ok=True)
    (root / "categories_places365.txt").write_text("\n".join(f"{c} {i}" for i, c in enumerate(cats)) + "\n")
    val_lines, test, n = [], [], 0
    for label in range(365):
        n += 1
        name = f"Places365_val_{n:08d}.jpg"
        test.append((write_image(root / "val_256" / name), label))
        val_lines.append(f"{name} {label}")
    (root / "places365_val.txt").write_text("\n".join(val_lines) + "\n")
    train_lines, trainval = [], []
    for label, c in enumerate(cats):
        for j in range(3):
            rel = f"{c}/{j + 1:08d}.jpg"
            trainval.append((write_image(root / "data_256" / rel.lstrip("/")), label))
            train_lines.append(f"{rel} {label}")
    (root / "places365_train_standard.txt").write_text("\n".join(train_lines) + "\n")
    return Expect([place_name(c) for c in cats], {"trainval": trainval, "test": test}, root,
                  listed=test[0][0], split_file=root / "places365_val.txt")


def imagenet(root: Path) -> Expect:
    from coderclip.datasets.imagenet import imagenet_class_names

    wnids = [f"n{1440764 + 7 * i:08d}" for i in range(1000)]
    splits = {"trainval": [], "test": []}
    for label, w in enumerate(wnids):
        for j in range(2 if label < 20 else 1):  # few files: this machine's disk is slow
            splits["trainval"].append((write_image(root / "images" / "train" / w / f"{w}_{j}.JPEG"), label))
        splits["test"].append((write_image(root / "images" / "val" / w / f"ILSVRC2012_val_{label:08d}.JPEG"), label))
    return Expect(imagenet_class_names(), splits, root / "images", listed=splits["test"][0][0])


def imagenet_v2(root: Path) -> Expect:
    from coderclip.datasets.imagenet import imagenet_class_names

    base = root / "imagenetv2-matched-frequency-format-val"
    test = [(write_image(base / str(label) / f"{label:04x}.jpeg"), label) for label in range(1000)]
    return Expect(imagenet_class_names(), {"test": test}, base, listed=test[0][0])


def cifar_binary(root: Path, key: str) -> Expect:
    """The binary version, with images whose first pixel encodes (split, index) for checking."""
    n = 10 if key == "cifar10" else 100
    raw = [folder(x) for x in shipped_or_generic(key, n)]
    if key == "cifar10":
        base, names_file = root / "cifar-10-batches-bin", "batches.meta.txt"
        files = {"trainval": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
    else:
        base, names_file = root / "cifar-100-binary", "fine_label_names.txt"
        files = {"trainval": ["train.bin"], "test": ["test.bin"]}
    base.mkdir(parents=True)
    (base / names_file).write_text("\n".join(raw) + "\n\n")
    labels = {}
    for split, fnames in files.items():
        labels[split] = []
        for f in fnames:
            recs = []
            for label in [i % n for i in range(n if key == "cifar10" or split == "test" else 2 * n)]:
                header = [label] if key == "cifar10" else [label // 5, label]
                pix = np.full(3072, len(labels[split]) % 256, dtype=np.uint8)
                recs.append(np.concatenate([np.array(header, dtype=np.uint8), pix]))
                labels[split].append(label)
            np.stack(recs).tofile(base / f)
    return Expect(expected_names(key, raw), {s: [(None, lab) for lab in v] for s, v in labels.items()},
                  base, split_file=base / files["test"][0])
