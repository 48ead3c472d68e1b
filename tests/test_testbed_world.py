"""The testbed's rendered world: determinism, caption hygiene and the fixed test set."""

from __future__ import annotations

import re

import numpy as np
import pytest

from coderclip.testbed import classes as tc
from coderclip.testbed import world
from coderclip.testbed.train import render_training_set, training_image, training_scene

#: Words of class names that are too generic to ban from captions.
_GENERIC = {"of", "the", "a", "no"}


def _banned_words() -> set[str]:
    """Every content word of every evaluation class name, with simple plurals."""
    words = set()
    for name in tc.CLASS_NAMES:
        for w in re.findall(r"[a-z]+", name.lower()):
            if w not in _GENERIC:
                words |= {w, w + "s", w + "es", w[:-1] + "ies" if w.endswith("y") else w}
    return words | {"dice", "blueberry"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


def test_render_and_caption_are_pure_functions_of_the_seed():
    def draw(key):
        rng = world.make_rng(*key)
        scene = world.random_scene(rng)
        return scene, np.asarray(world.render(scene, rng)), world.caption(scene, rng)

    s1, im1, c1 = draw((3, 1, 17, 0))
    s2, im2, c2 = draw((3, 1, 17, 0))
    assert s1 == s2 and c1 == c2
    assert im1.dtype == np.uint8 and im1.shape == (world.IMAGE_SIZE, world.IMAGE_SIZE, 3)
    assert np.array_equal(im1, im2)
    s3, im3, _ = draw((3, 1, 18, 0))
    assert not np.array_equal(im1, im3)


_DIGEST = """
import hashlib, numpy as np
from coderclip.testbed import classes as tc
from coderclip.testbed.train import render_training_set
imgs, caps = render_training_set(4, 6, renders=2)
test = np.stack([tc.render_test_image(c, 0) for c in range(0, len(tc.CLASSES), 4)])
print(hashlib.sha256(imgs.tobytes() + test.tobytes() + "|".join(caps).encode()).hexdigest())
"""


def test_rendering_does_not_depend_on_the_process(tmp_path):
    """Same images and captions in fresh interpreters with different string-hash seeds."""
    import os
    import subprocess
    import sys

    digests = set()
    for hash_seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=hash_seed)
        out = subprocess.run([sys.executable, "-c", _DIGEST], env=env, capture_output=True, text=True,
                             check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_renders_of_one_scene_differ_only_in_nuisance():
    scene, _ = training_scene(0, 5)
    a, b = training_image(0, 5, scene, 0), training_image(0, 5, scene, 1)
    assert not np.array_equal(a, b)
    assert np.array_equal(a, training_image(0, 5, scene, 0))


def test_training_set_is_independent_of_worker_count():
    imgs1, caps1 = render_training_set(1, 12, renders=2, workers=1, chunk=5)
    imgs2, caps2 = render_training_set(1, 12, renders=2, workers=2, chunk=5)
    assert imgs1.shape == (24, world.IMAGE_SIZE, world.IMAGE_SIZE, 3)
    assert np.array_equal(imgs1, imgs2) and caps1 == caps2


def test_captions_never_use_class_names():
    banned = _banned_words()
    assert {"lime", "flag", "ball", "sign", "light", "moon", "die", "target"} <= banned
    # the caption tables themselves ...
    leaked = world.caption_vocabulary() & banned
    assert not leaked, f"caption vocabulary contains class-name words: {sorted(leaked)}"
    # ... and real captions of random scenes, including pattern and extra phrases
    for i in range(3000):
        rng = world.make_rng(11, 1, i, 0)
        text = world.caption(world.random_scene(rng), rng)
        leaked = _words(text) & banned
        assert not leaked, f"caption {text!r} uses class-name words {sorted(leaked)}"
        for name in tc.CLASS_NAMES:
            assert name.lower() not in text.lower()


def test_captions_vary_in_wording_and_completeness():
    rng = world.make_rng(5, 1, 0, 0)
    scene = world.Scene(world.Thing("circle", "red", "spots", ("black",), size="small"), 1, "grass")
    texts = {world.caption(scene, rng) for _ in range(200)}
    assert len(texts) > 100
    assert any("spot" not in t and "dot" not in t for t in texts), "some captions leave the pattern out"
    assert any(t.startswith("on ") or " on " in t for t in texts)
    full = world.caption(scene, rng, drop=0.0, focused=0.0)
    assert "red" in full or "scarlet" in full
    focused = {world.caption(scene, rng, focused=1.0) for _ in range(50)}
    assert min(len(t) for t in focused) < len(full), "focused captions name only part of the scene"


def test_scene_validation():
    with pytest.raises(ValueError, match="unknown shape"):
        world.Thing("blob", "red")
    with pytest.raises(ValueError, match="takes 2-3 colours"):
        world.Thing("rectangle", "red", "vbands", ("white",))
    with pytest.raises(ValueError, match="unknown background"):
        world.Scene(world.Thing("circle", "red"), 1, "moonscape")


def test_classes_are_many_confusable_and_uniquely_named():
    assert len(tc.CLASSES) >= 30
    assert len(set(tc.CLASS_NAMES)) == len(tc.CLASS_NAMES)
    groups = {c.group for c in tc.CLASSES}
    assert {"fruit", "ball", "flag", "road", "sky", "game"} <= groups
    for name in ("lime", "lemon", "tennis ball", "flag of Poland", "flag of Indonesia"):
        assert name in tc.CLASS_NAMES


def test_test_set_is_fixed_and_ordered():
    images, labels = tc.make_test_set(per_class=2)
    n = len(tc.CLASSES)
    assert images.shape == (2 * n, world.IMAGE_SIZE, world.IMAGE_SIZE, 3)
    assert labels.tolist() == [c for c in range(n) for _ in range(2)]
    again, _ = tc.make_test_set(per_class=2, workers=2)
    assert np.array_equal(images, again)
    other, _ = tc.make_test_set(per_class=2, seed=tc.TEST_SEED + 1)
    assert not np.array_equal(images, other)
    # class recipes are a pure function of the seed, and a test image is never a training image
    assert np.array_equal(images[3], tc.render_test_image(1, 1))
    scene, _ = training_scene(tc.TEST_SEED, 1)
    assert not np.array_equal(images[3], training_image(tc.TEST_SEED, 1, scene, 0))


def test_shipped_class_list_and_pack_follow_the_test_set_order():
    from coderclip.knowledge import packs
    from coderclip.knowledge import load_knowledge

    assert packs.shipped_class_names("testbed") == tc.CLASS_NAMES
    kn = load_knowledge("testbed")
    assert kn.class_names == tc.CLASS_NAMES
    assert kn.domain == "generic"


def test_named_objects_and_naming_captions():
    from coderclip.testbed.named import DISTRACTORS, NAMED_OBJECTS, NamingRates, caption_named, named_caption

    names = [o.name for o in NAMED_OBJECTS]
    assert names[:len(tc.CLASSES)] == tc.CLASS_NAMES
    assert len(DISTRACTORS) >= len(tc.CLASSES) and len(set(names)) == len(names)
    rng = world.make_rng(5, 1, 0)
    for o in NAMED_OBJECTS:  # every recipe draws valid scenes; a naming caption names the object
        scene = o.recipe(rng)
        text = named_caption(o, scene, rng)
        assert any(s.lower() in text.lower() for s in (*o.singular, *o.plural)), (o.name, text)
    # the dial: no names without rates; with rates, names appear at about the chosen share
    plain = [training_scene(3, i)[1][0] for i in range(200)]
    assert not any(n.lower() in c.lower() for c in plain for n in ("lime", "flag of", "coin", "pumpkin"))
    rates = NamingRates(named=1.0, name=1.0, wrong=0.0)
    k, hits = 0, 0
    for i in range(300):
        r = world.make_rng(9, 1, i)
        k = int(r.integers(len(NAMED_OBJECTS)))
        o = NAMED_OBJECTS[k]
        cap = caption_named(k, o.recipe(r), r, rates)
        hits += any(s.lower() in cap.lower() for s in (*o.singular, *o.plural))
    assert hits == 300
    none = NamingRates(named=1.0, name=0.0)
    r = world.make_rng(9, 1, 0)
    assert not any(s.lower() in caption_named(0, NAMED_OBJECTS[0].recipe(r), r, none).lower()
                   for s in NAMED_OBJECTS[0].singular)


def test_training_scenes_with_names_are_pure_functions_of_the_seed():
    from coderclip.testbed.named import NamingRates

    rates = NamingRates(named=0.5)
    a = [training_scene(4, i, 2, rates) for i in range(40)]
    assert a == [training_scene(4, i, 2, rates) for i in range(40)]
    # with no named share the training stream is the descriptive world of before
    assert [training_scene(4, i) for i in range(20)] == [training_scene(4, i, 1, None) for i in range(20)]
    assert [s for s, _ in a] != [training_scene(4, i)[0] for i in range(40)]
