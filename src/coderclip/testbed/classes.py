"""The evaluation classes of the testbed world and its fixed test set.

Each class is an everyday concept whose look is a particular combination of the world's attributes
(a lime is a small glossy green round thing; the flag of Italy a rectangle in green, white and red
vertical bands). Groups of classes differ in one attribute only, so that one-vs-one contrasts
matter: lime / lemon / tennis ball / tangerine, flags that differ in one band's colour or in the
orientation of their bands, Poland / Indonesia (the same two colours, swapped).

The test set is rendered from these recipes with a fixed seed (:data:`TEST_SEED`) on its own random
stream; the model never sees a class recipe or a class name during training (see docs/testbed.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from .world import IMAGE_SIZE, Scene, Thing, make_rng, map_jobs, render

#: Seed of the shipped test set. Training uses its own seed and a different stream id, so no test
#: image is ever a training image, whatever training seed is chosen.
TEST_SEED = 20240417
#: The fixed test seeds the demo reports over (mean ± std); each renders a fresh test set.
TEST_SEEDS = (TEST_SEED, 20240418, 20240419, 20240420, 20240421)
#: Seed of the validation images (on their own stream), on which the demo chooses τ and K.
VAL_SEED = 777
#: Random stream ids: training scenes, test images, validation images (never the same key).
STREAM_TRAIN, STREAM_TEST, STREAM_VAL = 1, 2, 4
TEST_IMAGES_PER_CLASS = 50


@dataclasses.dataclass(frozen=True)
class TestClass:
    name: str
    group: str
    recipe: Callable[[np.random.Generator], Scene]


def _p(rng: np.random.Generator, options: Sequence, weights: Sequence[float] | None = None):
    if weights is None:
        return options[int(rng.integers(len(options)))]
    w = np.asarray(weights, dtype=float)
    return options[int(rng.choice(len(options), p=w / w.sum()))]


TABLE = ("white", "pale grey", "wood", "sand")
FLAG_BG = ("sky", "pale grey", "grass")
SIGN_BG = ("sky", "pale grey", "grass")
SPACE = ("starry", "black")


def _fruit_count(rng: np.random.Generator) -> int:
    return int(_p(rng, [1, 2, 3], [0.75, 0.15, 0.1]))


def _lime(rng):
    return Scene(Thing(_p(rng, ["circle", "oval"], [0.6, 0.4]), "green",
                       _p(rng, ["plain", "dimpled"], [0.7, 0.3]),
                       extra=_p(rng, [None, "leaf"], [0.85, 0.15]),
                       size=_p(rng, ["small", "medium"]), glossy=bool(rng.random() < 0.6)),
                 _fruit_count(rng), _p(rng, TABLE))


def _lemon(rng):
    return Scene(Thing("pointed oval", "yellow", _p(rng, ["plain", "dimpled"], [0.6, 0.4]),
                       extra=_p(rng, [None, "leaf"], [0.85, 0.15]),
                       size=_p(rng, ["small", "medium"]), glossy=bool(rng.random() < 0.4)),
                 _fruit_count(rng), _p(rng, TABLE))


def _tangerine(rng):
    return Scene(Thing("circle", "orange", _p(rng, ["dimpled", "plain"], [0.7, 0.3]),
                       extra=_p(rng, [None, "leaf", "stem"], [0.6, 0.3, 0.1]),
                       size=_p(rng, ["small", "medium"]), glossy=bool(rng.random() < 0.3)),
                 _fruit_count(rng), _p(rng, TABLE))


def _apple(rng):
    return Scene(Thing("circle", _p(rng, ["red", "dark red"], [0.7, 0.3]), "plain",
                       extra=_p(rng, ["stem and leaf", "stem"], [0.6, 0.4]),
                       size=_p(rng, ["medium", "large"], [0.7, 0.3]), glossy=bool(rng.random() < 0.6)),
                 _fruit_count(rng), _p(rng, TABLE))


def _tomato(rng):
    return Scene(Thing(_p(rng, ["circle", "oval"], [0.7, 0.3]), "red", "plain",
                       extra="crown", extra_colour=_p(rng, ["green", "dark green"]),
                       size=_p(rng, ["small", "medium"]), glossy=bool(rng.random() < 0.6)),
                 _fruit_count(rng), _p(rng, TABLE))


def _cherry(rng):
    return Scene(Thing("circle", _p(rng, ["dark red", "red"], [0.7, 0.3]), "plain",
                       extra="stem", extra_colour=_p(rng, ["brown", "green"]),
                       size="small", glossy=bool(rng.random() < 0.7)),
                 int(_p(rng, [2, 3], [0.7, 0.3])), _p(rng, TABLE))


def _strawberry(rng):
    return Scene(Thing("teardrop", "red", "speckles", ("yellow",), extra="crown",
                       extra_colour=_p(rng, ["green", "dark green"]),
                       size=_p(rng, ["small", "medium"]), glossy=bool(rng.random() < 0.3)),
                 _fruit_count(rng), _p(rng, TABLE))


def _watermelon(rng):
    return Scene(Thing("oval", "green", "stripes", ("dark green",), size="large",
                       glossy=bool(rng.random() < 0.3)),
                 1, _p(rng, (*TABLE, "grass")))


def _blueberries(rng):
    return Scene(Thing("circle", _p(rng, ["navy", "purple"], [0.75, 0.25]), "plain", size="small",
                       glossy=bool(rng.random() < 0.4)),
                 int(rng.integers(5, 10)), _p(rng, TABLE))


def _egg(rng):
    return Scene(Thing("tall oval", _p(rng, ["white", "tan"], [0.6, 0.4]), "plain",
                       size=_p(rng, ["small", "medium"])),
                 _fruit_count(rng), _p(rng, ("wood", "pale grey", "dark grey")))


def _donut(rng):
    return Scene(Thing("ring", _p(rng, ["tan", "brown", "pink"]),
                       _p(rng, ["sprinkles", "plain"], [0.65, 0.35]),
                       size=_p(rng, ["medium", "large"])),
                 int(_p(rng, [1, 2], [0.8, 0.2])), _p(rng, TABLE))


def _tennis_ball(rng):
    return Scene(Thing("circle", "yellow-green", "seams", ("white",), detail=float(rng.uniform(0.6, 1.0)),
                       size=_p(rng, ["small", "medium"])),
                 _fruit_count(rng), _p(rng, ("grass", "dark grey", "white", "sand")))


def _basketball(rng):
    return Scene(Thing("circle", "orange", "lines", ("black",), size=_p(rng, ["medium", "large"]),
                       glossy=bool(rng.random() < 0.2)),
                 1, _p(rng, ("wood", "dark grey", "white")))


def _golf_ball(rng):
    return Scene(Thing("circle", "white", "dimpled", size="small", glossy=bool(rng.random() < 0.3)),
                 int(_p(rng, [1, 2], [0.8, 0.2])), _p(rng, ("grass", "pale grey", "sand")))


def _baseball(rng):
    return Scene(Thing("circle", "white", "seams", ("red",), detail=float(rng.uniform(0.0, 0.3)),
                       size=_p(rng, ["small", "medium"])),
                 1, _p(rng, ("grass", "sand", "dark grey")))


def _soccer_ball(rng):
    return Scene(Thing("circle", "white", "patches", ("black",), size=_p(rng, ["medium", "large"])),
                 1, _p(rng, ("grass", "pale grey", "dark grey")))


def _billiard_ball(rng):
    return Scene(Thing("circle", "black", "disc", ("white",), detail=float(rng.uniform(0.1, 0.35)),
                       size=_p(rng, ["small", "medium"]), glossy=bool(rng.random() < 0.8)),
                 int(_p(rng, [1, 2], [0.8, 0.2])), _p(rng, ("grass", "wood", "pale grey")))


def _flag(pattern: str, colours: tuple[str, ...], base: str | None = None, disc: str | None = None):
    def recipe(rng):
        if disc is not None:
            thing = Thing("rectangle", base or "white", "disc", (disc,), detail=float(rng.uniform(0.6, 0.9)),
                          size=_p(rng, ["medium", "large"]))
        else:
            thing = Thing("rectangle", colours[0], pattern, colours, size=_p(rng, ["medium", "large"]))
        return Scene(thing, 1, _p(rng, FLAG_BG))
    return recipe


def _stop_sign(rng):
    return Scene(Thing("octagon", "red", "lettering", ("white",), border="white",
                       extra=_p(rng, [None, "post"]), size=_p(rng, ["medium", "large"])),
                 1, _p(rng, SIGN_BG))


def _yield_sign(rng):
    return Scene(Thing("inverted triangle", "white", "plain", border="red",
                       extra=_p(rng, [None, "post"]), size=_p(rng, ["medium", "large"])),
                 1, _p(rng, SIGN_BG))


def _no_entry_sign(rng):
    return Scene(Thing("circle", "red", "bar", ("white",), border=_p(rng, [None, "white"], [0.7, 0.3]),
                       extra=_p(rng, [None, "post"]), size=_p(rng, ["medium", "large"])),
                 1, _p(rng, SIGN_BG))


def _warning_sign(rng):
    return Scene(Thing("diamond", "yellow", "exclamation", ("black",), border="black",
                       extra=_p(rng, [None, "post"]), size=_p(rng, ["medium", "large"])),
                 1, _p(rng, SIGN_BG))


def _traffic_light(rng):
    return Scene(Thing("tall rectangle", _p(rng, ["black", "grey"], [0.7, 0.3]), "lamps",
                       ("red", "yellow", "green"), extra=_p(rng, [None, "post"]),
                       size=_p(rng, ["medium", "large"])),
                 1, _p(rng, ("sky", "pale grey")))


def _mars(rng):
    pattern = _p(rng, ["craters", "blobs", "plain"], [0.4, 0.4, 0.2])
    cols = (_p(rng, ["brown", "dark red"]),) if pattern == "blobs" else ()
    return Scene(Thing("circle", "rust", pattern, cols, size=_p(rng, ["medium", "large"])),
                 1, _p(rng, SPACE))


def _earth(rng):
    cols = _p(rng, [("green", "white"), ("green",), ("green", "tan")])
    return Scene(Thing("circle", "blue", "blobs", cols, size=_p(rng, ["medium", "large"])),
                 1, _p(rng, SPACE))


def _saturn(rng):
    body = _p(rng, ["tan", "yellow"], [0.7, 0.3])
    pattern = _p(rng, ["plain", "stripes"])
    return Scene(Thing("circle", body, pattern, ("brown",) if pattern == "stripes" else (),
                       extra="orbit", extra_colour=_p(rng, ["tan", "white", "grey"]), size="medium"),
                 1, _p(rng, SPACE))


def _jupiter(rng):
    body = _p(rng, ["tan", "orange"], [0.6, 0.4])
    return Scene(Thing("circle", body, "stripes", (_p(rng, ["brown", "rust", "white"]),),
                       detail=float(rng.uniform(0.3, 1.0)), size=_p(rng, ["medium", "large"])),
                 1, _p(rng, SPACE))


def _moon(rng):
    shape = _p(rng, ["circle", "crescent"], [0.7, 0.3])
    colour = _p(rng, ["grey", "white", "yellow"], [0.5, 0.3, 0.2]) if shape == "circle" else _p(rng, ["white", "yellow", "grey"])
    return Scene(Thing(shape, colour, "craters" if shape == "circle" else "plain",
                       size=_p(rng, ["medium", "large"])),
                 1, _p(rng, SPACE))


def _sun(rng):
    colour = _p(rng, ["yellow", "orange"], [0.7, 0.3])
    return Scene(Thing("circle", colour, "plain", extra="rays", extra_colour=_p(rng, ["yellow", "orange"]),
                       size=_p(rng, ["small", "medium"])),
                 1, _p(rng, ("sky", "sky", "white")))


def _die(rng):
    body = _p(rng, ["white", "red"], [0.75, 0.25])
    return Scene(Thing("rounded square", body, "pips", ("black" if body == "white" else "white",),
                       pattern_count=int(rng.integers(1, 7)), size=_p(rng, ["small", "medium"])),
                 int(_p(rng, [1, 2], [0.7, 0.3])), _p(rng, ("wood", "pale grey", "sand", "dark grey")))


def _domino(rng):
    body = _p(rng, ["black", "white"], [0.65, 0.35])
    return Scene(Thing("tall rectangle", body, "domino", ("white" if body == "black" else "black",),
                       size=_p(rng, ["medium", "large"])),
                 int(_p(rng, [1, 2, 3], [0.6, 0.25, 0.15])), _p(rng, ("wood", "pale grey", "sand")))


def _chessboard(rng):
    return Scene(Thing("square", _p(rng, ["white", "tan"]), "checks", (_p(rng, ["black", "brown"]),),
                       detail=1.0, size="large"),
                 1, _p(rng, ("wood", "pale grey", "dark grey")))


def _archery_target(rng):
    return Scene(Thing("circle", "white", "rings", ("black", "blue", "red", "yellow"),
                       size=_p(rng, ["medium", "large"])),
                 1, _p(rng, ("grass", "sand", "pale grey")))


def _ladybug(rng):
    return Scene(Thing(_p(rng, ["circle", "oval"]), "red", "spots", ("black",), extra="head",
                       size=_p(rng, ["small", "medium"]), glossy=bool(rng.random() < 0.5)),
                 int(_p(rng, [1, 2], [0.8, 0.2])), "grass")


CLASSES: list[TestClass] = [
    TestClass("lime", "fruit", _lime),
    TestClass("lemon", "fruit", _lemon),
    TestClass("tangerine", "fruit", _tangerine),
    TestClass("apple", "fruit", _apple),
    TestClass("tomato", "fruit", _tomato),
    TestClass("cherry", "fruit", _cherry),
    TestClass("strawberry", "fruit", _strawberry),
    TestClass("watermelon", "fruit", _watermelon),
    TestClass("blueberries", "fruit", _blueberries),
    TestClass("egg", "food", _egg),
    TestClass("donut", "food", _donut),
    TestClass("tennis ball", "ball", _tennis_ball),
    TestClass("basketball", "ball", _basketball),
    TestClass("golf ball", "ball", _golf_ball),
    TestClass("baseball", "ball", _baseball),
    TestClass("soccer ball", "ball", _soccer_ball),
    TestClass("billiard ball", "ball", _billiard_ball),
    TestClass("flag of France", "flag", _flag("vbands", ("blue", "white", "red"))),
    TestClass("flag of Italy", "flag", _flag("vbands", ("green", "white", "red"))),
    TestClass("flag of Ireland", "flag", _flag("vbands", ("green", "white", "orange"))),
    TestClass("flag of Belgium", "flag", _flag("vbands", ("black", "yellow", "red"))),
    TestClass("flag of Germany", "flag", _flag("hbands", ("black", "red", "yellow"))),
    TestClass("flag of the Netherlands", "flag", _flag("hbands", ("red", "white", "blue"))),
    TestClass("flag of Russia", "flag", _flag("hbands", ("white", "blue", "red"))),
    TestClass("flag of Poland", "flag", _flag("hbands", ("white", "red"))),
    TestClass("flag of Indonesia", "flag", _flag("hbands", ("red", "white"))),
    TestClass("flag of Ukraine", "flag", _flag("hbands", ("blue", "yellow"))),
    TestClass("flag of Japan", "flag", _flag("disc", (), base="white", disc="red")),
    TestClass("flag of Bangladesh", "flag", _flag("disc", (), base="dark green", disc="red")),
    TestClass("stop sign", "road", _stop_sign),
    TestClass("yield sign", "road", _yield_sign),
    TestClass("no entry sign", "road", _no_entry_sign),
    TestClass("warning sign", "road", _warning_sign),
    TestClass("traffic light", "road", _traffic_light),
    TestClass("Mars", "sky", _mars),
    TestClass("Earth", "sky", _earth),
    TestClass("Saturn", "sky", _saturn),
    TestClass("Jupiter", "sky", _jupiter),
    TestClass("moon", "sky", _moon),
    TestClass("sun", "sky", _sun),
    TestClass("die", "game", _die),
    TestClass("domino", "game", _domino),
    TestClass("chessboard", "game", _chessboard),
    TestClass("archery target", "game", _archery_target),
    TestClass("ladybug", "animal", _ladybug),
]

CLASS_NAMES: list[str] = [c.name for c in CLASSES]


def render_test_image(class_index: int, i: int, seed: int = TEST_SEED, stream: int = STREAM_TEST) -> np.ndarray:
    """Test image ``i`` of class ``class_index`` as ``[H, W, 3]`` uint8 (``stream``
    :data:`STREAM_VAL` for validation images)."""
    rng = make_rng(seed, stream, class_index, i)
    scene = CLASSES[class_index].recipe(rng)
    return np.asarray(render(scene, rng))


def _render_block(args: tuple[int, int, int, int, int]) -> np.ndarray:
    c, start, stop, seed, stream = args
    return np.stack([render_test_image(c, i, seed, stream) for i in range(start, stop)])


def make_test_set(per_class: int = TEST_IMAGES_PER_CLASS, seed: int = TEST_SEED,
                  classes: Sequence[int] | None = None, workers: int = 1,
                  stream: int = STREAM_TEST) -> tuple[np.ndarray, np.ndarray]:
    """The fixed test set: images ``[N, 64, 64, 3]`` uint8 and labels ``[N]`` int64 (class order).

    Deterministic in ``seed``; ``workers > 1`` renders in parallel processes (same result).
    """
    classes = list(range(len(CLASSES))) if classes is None else list(classes)
    jobs = [(c, 0, per_class, seed, stream) for c in classes]
    blocks = map_jobs(_render_block, jobs, workers)
    images = np.concatenate(blocks) if blocks else np.zeros((0, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    labels = np.repeat(np.asarray(classes, dtype=np.int64), per_class)
    return images, labels


def make_val_set(per_class: int = 20, seed: int = VAL_SEED, classes: Sequence[int] | None = None,
                 workers: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Labelled validation images from the class recipes, on the validation stream (no test or
    training image is one of them)."""
    return make_test_set(per_class, seed=seed, classes=classes, workers=workers, stream=STREAM_VAL)
