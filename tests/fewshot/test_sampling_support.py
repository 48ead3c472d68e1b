"""Protocol sampling (seeded, nested, min(K, 4) validation images) and augmented, cached support
features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from coderclip.errors import ConfigError
from coderclip.fewshot.sampling import plan_splits
from coderclip.fewshot.support import (Augmentation, SupportFeatureCache, input_size,
                                       random_resized_box, support_features)

from ..helpers import HashEncoder


def test_splits_are_seeded_nested_and_sized_by_the_protocol():
    rng = np.random.default_rng(0)
    train = np.repeat(np.arange(5), 20)
    train = np.concatenate([train, [5, 5, 5]])          # class 5 has only 3 train images
    rng.shuffle(train)
    val = np.repeat(np.arange(6), 6)
    splits = plan_splits(train, val, 6, shots=(16, 1, 2, 4, 8), seeds=(1, 2, 3))
    assert sorted(splits) == [(s, k) for s in (1, 2, 3) for k in (1, 2, 4, 8, 16)]
    for (seed, k), sp in splits.items():
        counts = np.bincount(train[sp.support], minlength=6)
        assert counts[:5].tolist() == [k] * 5 and counts[5] == min(k, 3)
        assert np.bincount(val[sp.val], minlength=6).tolist() == [min(k, 4)] * 6
        assert sp.short_classes == ((5,) if k > 3 else ())
        assert len(set(sp.support.tolist())) == len(sp.support)
    for seed in (1, 2, 3):   # nested: smaller K inside larger K
        for small, big in zip((1, 2, 4, 8), (2, 4, 8, 16)):
            assert set(splits[(seed, small)].support) <= set(splits[(seed, big)].support)
            assert set(splits[(seed, small)].val) <= set(splits[(seed, big)].val)
    again = plan_splits(train, val, 6, shots=(4,), seeds=(2,))
    assert (again[(2, 4)].support == splits[(2, 4)].support).all()
    assert set(splits[(1, 4)].support) != set(splits[(2, 4)].support)


def test_split_errors():
    with pytest.raises(ConfigError):
        plan_splits(np.array([0, 0]), np.array([0, 1]), 2)          # class 1 has no train image
    with pytest.raises(ConfigError):
        plan_splits(np.array([0, 1]), np.array([0, 0]), 2)          # class 1 has no val image
    with pytest.raises(ConfigError):
        plan_splits(np.array([0, 1]), np.array([0, 1]), 2, shots=(0,))


def test_random_resized_boxes_cover_half_to_all_of_the_image():
    rng = np.random.default_rng(0)
    for w, h in ((64, 48), (30, 200), (224, 224), (5, 1)):
        for _ in range(200):
            left, top, right, bottom = random_resized_box(w, h, (0.5, 1.0), (3 / 4, 4 / 3), rng)
            assert 0 <= left < right <= w and 0 <= top < bottom <= h
            if 3 / 4 <= w / h <= 4 / 3:   # otherwise the fallback may take a narrower central crop
                assert 0.5 * w * h * 0.8 <= (right - left) * (bottom - top) <= w * h


@pytest.fixture
def photo_paths(tmp_path):
    rng = np.random.default_rng(1)
    paths = []
    for i in range(5):
        p = tmp_path / f"im{i}.png"
        Image.fromarray(rng.integers(0, 255, (40 + i, 50, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def test_support_features_are_deterministic_cached_and_average_the_views(photo_paths, monkeypatch):
    enc = HashEncoder(dim=16)
    aug = Augmentation(views=4)
    first = support_features(enc, photo_paths, aug, batch_size=8, cache=False)
    second = support_features(enc, photo_paths, aug, batch_size=3, cache=False, num_workers=0)
    assert first.kept == list(range(5)) and torch.allclose(first.embeddings, second.embeddings)
    assert torch.allclose(first.embeddings.norm(dim=1), torch.ones(5))
    # the views really differ from the plain image, and views=0 is the plain embedding
    plain = support_features(enc, photo_paths, Augmentation(views=0), cache=False).embeddings
    from coderclip.images import load_image
    direct = enc.encode_images([load_image(p) for p in photo_paths])
    assert torch.allclose(plain, direct, atol=1e-6)
    assert not torch.allclose(first.embeddings, plain, atol=1e-3)
    # a cache hit encodes nothing
    cached = support_features(enc, photo_paths, aug)
    calls = []
    monkeypatch.setattr(enc, "_encode_image_batch", lambda px: calls.append(px) or px.flatten(1)[:, :16])
    again = support_features(enc, photo_paths, aug)
    assert calls == [] and torch.equal(cached.embeddings, again.embeddings)
    assert torch.allclose(cached.embeddings, first.embeddings, atol=1e-6)
    folder = SupportFeatureCache(f"{enc.identity}|{aug.key()}").folder
    assert folder.parent.name == "support-features" and any(folder.glob("*.safetensors"))
    # another augmentation seed is another cache entry and other views
    other = support_features(enc, photo_paths, Augmentation(views=4, seed=7), cache=False)
    assert not torch.allclose(other.embeddings, first.embeddings, atol=1e-4)


def test_unreadable_support_images_are_skipped_and_reported(photo_paths, tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    paths = [photo_paths[0], bad, tmp_path / "missing.png", photo_paths[1]]
    out = support_features(HashEncoder(dim=16), paths, Augmentation(views=2))
    assert out.kept == [0, 3] and out.embeddings.shape == (2, 16)
    assert [p for p, _ in out.failures] == [str(bad), str(tmp_path / "missing.png")]


def test_input_size_and_augmentation_validation():
    assert input_size(HashEncoder().preprocess) == (8, 8)
    with pytest.raises(ConfigError):
        Augmentation(views=-1)
    with pytest.raises(ConfigError):
        Augmentation(scale=(0.0, 1.0))
    assert Augmentation().key() != Augmentation(views=3).key()
