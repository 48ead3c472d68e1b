"""Images: every PIL mode is converted by what its numbers mean (real files written by PIL),
oversized images are refused by name, and unusable entries are reported once, never dropped."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from coderclip.errors import ImageReadError
from coderclip.images import find_images, load_image

from .conftest import assert_one_clean_line, cli

RAMP = np.linspace(0.0, 1.0, 32 * 32).reshape(32, 32)   # black to white


def _gray_mean(path) -> float:
    return float(np.asarray(load_image(path), dtype=np.float64).mean())


@pytest.mark.parametrize("mode, suffix, make", [
    ("I;16", ".png", lambda: Image.fromarray((RAMP * 65535).astype(np.uint16))),
    ("I", ".tif", lambda: Image.fromarray((RAMP * 65535).astype(np.int32), mode="I")),
    ("F", ".tif", lambda: Image.fromarray(RAMP.astype(np.float32), mode="F")),
    ("F", ".tif", lambda: Image.fromarray((RAMP * 4000 - 1000).astype(np.float32), mode="F")),
    ("L", ".png", lambda: Image.fromarray((RAMP * 255).astype(np.uint8))),
    ("P", ".png", lambda: Image.fromarray((RAMP * 255).astype(np.uint8)).convert("P")),
    ("1", ".png", lambda: Image.fromarray(RAMP > 0.5)),
    ("CMYK", ".jpg", lambda: Image.fromarray((RAMP * 255).astype(np.uint8)).convert("RGB").convert("CMYK")),
])
def test_grey_ramps_stay_mid_grey_in_every_mode(tmp_path, mode, suffix, make):
    """A black-to-white ramp averages about 128 whatever the storage: the 16-bit PNG was read as
    all white and the float TIFF as all black before."""
    path = tmp_path / f"ramp{suffix}"
    make().save(path)
    with Image.open(path) as im:
        assert im.mode == mode
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (32, 32)
    assert 100 < _gray_mean(path) < 156, (mode, _gray_mean(path))


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_transparent_pixels_become_white(tmp_path, mode):
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))           # fully transparent black
    rgba.paste((0, 0, 0, 255), (0, 0, 4, 8))                 # left half opaque black
    im = rgba if mode == "RGBA" else rgba.convert(mode)
    path = tmp_path / "alpha.png"
    im.save(path)
    with Image.open(path) as check:
        assert check.mode == mode
    a = np.asarray(load_image(path))
    assert a[:, :4].max() < 30 and a[:, 4:].min() > 225


def test_palette_with_transparency_and_colour(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 200
    im = Image.fromarray(rgb).convert("P")
    im.info["transparency"] = 255                             # an unused index: nothing transparent
    path = tmp_path / "pal.png"
    im.save(path, transparency=0)
    a = np.asarray(load_image(path))
    assert a.shape == (8, 8, 3)


def test_oversized_image_is_refused_by_name_without_a_raw_warning(tmp_path, monkeypatch, recwarn):
    path = tmp_path / "huge.png"
    Image.new("RGB", (300, 300)).save(path)
    monkeypatch.setenv("CODERCLIP_MAX_IMAGE_PIXELS", "10000")
    with pytest.raises(ImageReadError, match=r"huge.png: image is 300x300 .*CODERCLIP_MAX_IMAGE_PIXELS"):
        load_image(path)
    jpeg = tmp_path / "huge.jpg"
    Image.new("RGB", (300, 300), (10, 200, 10)).save(jpeg)
    small = load_image(jpeg)                                  # JPEG: decoded smaller, not refused
    assert max(small.size) < 300 and np.asarray(small)[..., 1].mean() > 150
    assert not [w for w in recwarn if "DecompressionBomb" in type(w.message).__name__]


def test_dangling_symlink_is_reported_not_dropped(tmp_path, photo):
    folder = tmp_path / "imgs"
    folder.mkdir()
    os.symlink(photo, folder / "ok.png")
    os.symlink(tmp_path / "gone.png", folder / "broken.png")
    problems = []
    found = find_images([folder], problems=problems)
    assert [p.name for p in found] == ["ok.png"]
    assert len(problems) == 1 and "broken.png" in problems[0][1] and "does not exist" in problems[0][1]


def test_unreadable_sub_folder_is_reported(tmp_path, photo):
    folder = tmp_path / "imgs"
    (folder / "a").mkdir(parents=True)
    (folder / "a" / "x.png").write_bytes(photo.read_bytes())
    if os.geteuid() != 0:
        locked = folder / "locked"
        locked.mkdir()
        locked.chmod(0)
    else:   # root reads every folder: use one the kernel refuses to list even to root
        try:
            os.listdir("/proc/1/map_files")
        except OSError:
            pass
        else:
            pytest.skip("root may list every folder on this machine (no folder to lock it out of)")
        os.symlink("/proc/1/map_files", folder / "locked")
    problems = []
    try:
        found = find_images([folder], problems=problems)
    finally:
        if os.geteuid() != 0:
            (folder / "locked").chmod(0o755)
    assert [p.name for p in found] == ["x.png"]
    assert any("locked" in reason and "folder skipped" in reason for _, reason in problems), problems


def test_all_images_unreadable_is_an_input_error_not_empty_success(capsys, tmp_path, classes_file,
                                                                    open_clip_spec):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.jpg").write_text("not an image")
    (folder / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    code, out, err = cli(capsys, "classify", folder, "-m", open_clip_spec, "--classes", classes_file)
    assert_one_clean_line(code, err, 3, str(folder), "none of the 2 image(s)")
    assert out == ""
    assert err.count("a.jpg") == 1 and err.count("b.png") == 1     # each reported once


def test_16_bit_and_float_files_embed_like_their_8_bit_twin(tmp_path, open_clip_encoder):
    """End to end through the image tower: a 16-bit PNG and a float TIFF of a photo embed like
    the 8-bit PNG of the same photo (before, they were read as white and black squares)."""
    from coderclip.images import encode_image_files

    rng = np.random.default_rng(0)
    photo = rng.random((32, 32))
    files = {"8": tmp_path / "p8.png", "16": tmp_path / "p16.png", "f": tmp_path / "pf.tif",
             "white": tmp_path / "white.png", "black": tmp_path / "black.png"}
    Image.fromarray((photo * 255).round().astype(np.uint8)).save(files["8"])
    Image.fromarray((photo * 65535).round().astype(np.uint16)).save(files["16"])
    Image.fromarray(photo.astype(np.float32), mode="F").save(files["f"])
    Image.new("L", (32, 32), 255).save(files["white"])
    Image.new("L", (32, 32), 0).save(files["black"])
    enc = encode_image_files(open_clip_encoder, list(files.values()), num_workers=0)
    e = dict(zip(files, enc.embeddings))
    for k in ("16", "f"):
        same = float(e[k] @ e["8"])
        assert same > 0.999, (k, same)
        assert same > float(e[k] @ e["white"]) + 1e-3 and same > float(e[k] @ e["black"]) + 1e-3
