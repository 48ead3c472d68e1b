"""Reading real image files, and skipping unreadable ones in batches."""

from __future__ import annotations

import pytest

from coderclip.errors import ImageReadError
from coderclip.images import encode_image_files, find_images, load_image


@pytest.mark.parametrize("kind", ["jpeg", "png", "gray", "rgba"])
def test_readable_formats_become_rgb(image_files, kind):
    im = load_image(image_files[kind])
    assert im.mode == "RGB" and im.size == (50, 40)


@pytest.mark.parametrize("kind, message", [("truncated", "cannot decode"), ("not_image", "not an image")])
def test_broken_files_raise_with_their_path(image_files, kind, message):
    with pytest.raises(ImageReadError) as e:
        load_image(image_files[kind])
    assert str(image_files[kind]) in str(e.value) and message in str(e.value)


def test_missing_path(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        find_images([tmp_path / "nope"])


def test_batch_skips_unreadable_and_keeps_order(image_files, open_clip_encoder):
    paths = [image_files[k] for k in ("jpeg", "truncated", "png", "not_image", "gray", "rgba")]
    out = encode_image_files(open_clip_encoder, paths, batch_size=2, num_workers=0)
    assert out.kept == [0, 2, 4, 5]
    assert out.embeddings.shape == (4, open_clip_encoder.embed_dim)
    assert [p for p, _ in out.failures] == [str(image_files["truncated"]), str(image_files["not_image"])]
    # the JPEG and the PNG of the same pixels embed almost identically
    assert float(out.embeddings[0] @ out.embeddings[1]) > 0.99


def test_find_images_walks_folders(sample_photos):
    files = find_images([sample_photos])
    assert len(files) >= 100 and all(f.suffix.lower() in (".png", ".jpg", ".jpeg") for f in files)
