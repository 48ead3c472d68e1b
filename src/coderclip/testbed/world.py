"""A small deterministic world of rendered scenes, and captions that describe them.

A scene is one kind of :class:`Thing` (a shape with a colour, a surface pattern, an optional border
and an optional attached part), drawn once or several times on a background. Everything the renderer
varies beyond that (position, rotation, scale, colour jitter, lighting, noise, blur) is nuisance.
:func:`caption` describes a scene in varied natural language; it only ever uses the world's own
vocabulary of shapes, colours and patterns, never the names of the evaluation classes
(``coderclip.testbed.classes``), so the trained model learns what things *look like*, not what they
are called.

All randomness comes from a ``numpy.random.Generator`` passed in, so a scene, its image and its
caption are a pure function of a seed.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 64
_SS = 2  # supersampling factor: scenes are drawn at 2x and box-filtered down
_CANVAS = IMAGE_SIZE * _SS

RGB = tuple[int, int, int]


# ---------------------------------------------------------------------------------------- vocabulary
@dataclasses.dataclass(frozen=True)
class Colour:
    rgb: RGB
    words: tuple[str, ...]  # ways a caption may name the colour (the first is the plain name)


COLOURS: dict[str, Colour] = {
    "red": Colour((205, 30, 35), ("red", "bright red", "scarlet")),
    "dark red": Colour((128, 14, 32), ("dark red", "deep red", "maroon", "burgundy")),
    "rust": Colour((182, 78, 44), ("rust-coloured", "rusty red", "reddish orange", "brick red")),
    "orange": Colour((245, 132, 22), ("orange", "bright orange")),
    "yellow": Colour((247, 212, 30), ("yellow", "bright yellow", "golden yellow")),
    "yellow-green": Colour((205, 228, 48), ("yellow-green", "chartreuse", "neon yellow-green",
                                            "fluorescent yellow", "greenish yellow")),
    "green": Colour((52, 165, 48), ("green", "bright green", "grass green")),
    "dark green": Colour((18, 92, 42), ("dark green", "deep green", "forest green", "bottle green")),
    "pale blue": Colour((112, 176, 232), ("pale blue", "sky blue", "baby blue", "azure")),
    "blue": Colour((28, 78, 200), ("blue", "royal blue", "cobalt blue")),
    "navy": Colour((26, 32, 98), ("navy", "navy blue", "dark blue", "indigo")),
    "purple": Colour((124, 48, 166), ("purple", "violet")),
    "pink": Colour((242, 140, 182), ("pink", "pale pink", "rose pink")),
    "brown": Colour((116, 70, 34), ("brown", "chocolate brown", "dark brown")),
    "tan": Colour((214, 180, 126), ("tan", "beige", "sandy", "buff")),
    "white": Colour((246, 246, 242), ("white", "off-white", "snow white")),
    "grey": Colour((142, 142, 142), ("grey", "gray", "silver")),
    "black": Colour((22, 22, 26), ("black", "jet black")),
}

SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # name: (singular wordings, plural wordings)
    "circle": (("circle", "round shape", "disc", "circular shape", "sphere"),
               ("circles", "round shapes", "discs", "spheres")),
    "oval": (("oval", "ellipse", "oval shape", "wide oval"), ("ovals", "ellipses", "oval shapes")),
    "pointed oval": (("pointed oval", "oval with pointed ends", "oval with a small point at each end"),
                     ("pointed ovals", "ovals with pointed ends")),
    "tall oval": (("tall oval", "upright oval", "vertical oval"), ("tall ovals", "upright ovals")),
    "square": (("square", "square shape"), ("squares",)),
    "rounded square": (("rounded square", "square with rounded corners", "soft-cornered square"),
                       ("rounded squares", "squares with rounded corners")),
    "rectangle": (("rectangle", "wide rectangle", "horizontal rectangle", "oblong"),
                  ("rectangles", "wide rectangles")),
    "tall rectangle": (("tall rectangle", "upright rectangle", "vertical rectangle", "narrow upright box"),
                       ("tall rectangles", "upright rectangles")),
    "triangle": (("triangle", "upward-pointing triangle"), ("triangles",)),
    "inverted triangle": (("upside-down triangle", "downward-pointing triangle", "inverted triangle"),
                          ("upside-down triangles", "inverted triangles")),
    "diamond": (("diamond", "rhombus", "square standing on one corner"), ("diamonds", "rhombuses")),
    "pentagon": (("pentagon", "five-sided shape"), ("pentagons",)),
    "hexagon": (("hexagon", "six-sided shape"), ("hexagons",)),
    "octagon": (("octagon", "eight-sided shape"), ("octagons",)),
    "star": (("star", "five-pointed star", "star shape"), ("stars", "five-pointed stars")),
    "heart": (("heart", "heart shape"), ("hearts", "heart shapes")),
    "crescent": (("crescent", "crescent shape", "curved sliver"), ("crescents", "crescent shapes")),
    "ring": (("ring", "hoop", "ring shape", "circle with a hole in the middle"), ("rings", "hoops")),
    "teardrop": (("rounded cone pointing down", "teardrop shape pointing downward",
                  "rounded triangle with the point at the bottom"),
                 ("rounded cones pointing down", "downward teardrops")),
}
#: Shapes drawn with sphere-like shading (round, solid-looking objects) when the lighting says so.
_ROUND = {"circle", "oval", "pointed oval", "tall oval", "teardrop", "heart"}

BACKGROUNDS: dict[str, tuple[str, ...]] = {
    # name: noun phrases for captions
    "white": ("a white background", "a plain white background", "a blank white backdrop", "white"),
    "pale grey": ("a pale grey background", "a pale gray backdrop", "a grey studio backdrop"),
    "dark grey": ("a dark grey background", "a charcoal backdrop", "grey asphalt"),
    "black": ("a black background", "a plain black backdrop", "black"),
    "starry": ("a starry black sky", "a dark sky full of tiny stars", "black space with specks of stars",
               "a night sky"),
    "sky": ("a clear blue sky", "a blue sky", "a bright sky"),
    "grass": ("green grass", "a grassy lawn", "a lawn", "grass"),
    "wood": ("a wooden table", "a wooden surface", "brown wooden planks", "a wood floor"),
    "sand": ("a beige background", "sand", "a sandy backdrop"),
}


# ---------------------------------------------------------------------------------------- scene model
@dataclasses.dataclass(frozen=True)
class Thing:
    """One kind of object: everything a caption may say about it.

    ``pattern_colours`` are the colours the pattern uses (bands: all bands in reading order, the
    base ``colour`` unused; rings: the inner rings from the outside in; lamps: top to bottom).
    ``detail`` is a pattern-specific scale in [0, 1] (disc radius, stripe count, ...) or ``None``
    for a random one; captions do not mention it.
    """

    shape: str
    colour: str
    pattern: str = "plain"
    pattern_colours: tuple[str, ...] = ()
    pattern_count: int = 0
    border: str | None = None
    extra: str | None = None
    extra_colour: str | None = None
    size: str = "medium"
    glossy: bool = False
    detail: float | None = None

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}")
        for c in (self.colour, *self.pattern_colours, self.border, self.extra_colour):
            if c is not None and c not in COLOURS:
                raise ValueError(f"unknown colour {c!r}")
        if self.pattern not in PATTERNS:
            raise ValueError(f"unknown pattern {self.pattern!r}")
        lo, hi = PATTERNS[self.pattern].n_colours
        if not lo <= len(self.pattern_colours) <= hi:
            raise ValueError(f"pattern {self.pattern!r} takes {lo}-{hi} colours, got {self.pattern_colours}")
        if self.extra is not None and self.extra not in EXTRAS:
            raise ValueError(f"unknown extra {self.extra!r}")
        if self.size not in SIZES:
            raise ValueError(f"unknown size {self.size!r}")


@dataclasses.dataclass(frozen=True)
class Scene:
    thing: Thing
    count: int = 1
    background: str = "white"

    def __post_init__(self) -> None:
        if self.background not in BACKGROUNDS:
            raise ValueError(f"unknown background {self.background!r}")
        if not 1 <= self.count <= 9:
            raise ValueError(f"count must be 1-9, got {self.count}")


#: size name -> (half-size range as a fraction of the image side, caption words)
SIZES: dict[str, tuple[tuple[float, float], tuple[str, ...]]] = {
    "small": ((0.13, 0.17), ("small", "little", "tiny")),
    "medium": ((0.21, 0.26), ("medium-sized", "mid-sized", "")),
    "large": ((0.32, 0.39), ("large", "big", "huge")),
}


# ---------------------------------------------------------------------------------------- geometry
def _unit_polygon(shape: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Outline (and optional hole) of a shape in unit coordinates (x right, y down, within [-1, 1])."""
    t = np.linspace(0, 2 * np.pi, 97)[:-1]
    c, s = np.cos(t), np.sin(t)
    hole = None
    if shape == "circle":
        pts = np.stack([c, s], 1)
    elif shape == "oval":
        pts = np.stack([c, 0.7 * s], 1)
    elif shape == "pointed oval":
        pts = np.stack([c * (0.84 + 0.16 * np.abs(c) ** 30), 0.64 * s], 1)
    elif shape == "tall oval":
        pts = np.stack([0.72 * c * (1 + 0.13 * s), s], 1)
    elif shape == "square":
        pts = np.array([[-0.8, -0.8], [0.8, -0.8], [0.8, 0.8], [-0.8, 0.8]])
    elif shape == "rounded square":
        pts = 0.84 * np.stack([np.sign(c) * np.abs(c) ** 0.4, np.sign(s) * np.abs(s) ** 0.4], 1)
    elif shape == "rectangle":
        pts = np.array([[-1, -0.667], [1, -0.667], [1, 0.667], [-1, 0.667]])
    elif shape == "tall rectangle":
        pts = np.array([[-0.46, -1], [0.46, -1], [0.46, 1], [-0.46, 1]])
    elif shape == "triangle":
        pts = np.array([[0, -0.95], [0.95, 0.7], [-0.95, 0.7]])
    elif shape == "inverted triangle":
        pts = np.array([[0, 0.95], [0.95, -0.7], [-0.95, -0.7]])
    elif shape == "diamond":
        pts = np.array([[0, -1], [0.78, 0], [0, 1], [-0.78, 0]])
    elif shape in ("pentagon", "hexagon", "octagon"):
        n, start = {"pentagon": (5, -90), "hexagon": (6, 0), "octagon": (8, 22.5)}[shape]
        a = np.deg2rad(start + 360 / n * np.arange(n))
        pts = np.stack([np.cos(a), np.sin(a)], 1)
    elif shape == "star":
        a = np.deg2rad(-90 + 36 * np.arange(10))
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.42)
        pts = np.stack([r * np.cos(a), r * np.sin(a) + 0.08], 1)
    elif shape == "heart":
        x = 16 * np.sin(t) ** 3
        y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
        pts = np.stack([x / 17, (y + 2.5) / 17], 1)
    elif shape == "crescent":
        pts = np.stack([c, s], 1)
        hole = np.stack([0.42 + 0.86 * c, -0.12 + 0.86 * s], 1)
    elif shape == "ring":
        pts = np.stack([c, s], 1)
        hole = np.stack([0.46 * c, 0.46 * s], 1)
    elif shape == "teardrop":
        pts = np.stack([0.9 * c * (1 - 0.6 * ((1 + s) / 2) ** 1.6), 0.12 + 0.92 * s], 1)
    else:  # pragma: no cover - guarded by Thing.__post_init__
        raise ValueError(shape)
    return pts, hole


_UNIT = {name: _unit_polygon(name) for name in SHAPES}


def _poly(pts: np.ndarray, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    return [(cx + r * x, cy + r * y) for x, y in pts]


def _bbox(shape: str, cx: float, cy: float, r: float) -> tuple[float, float, float, float]:
    pts = _UNIT[shape][0]
    return (cx + r * pts[:, 0].min(), cy + r * pts[:, 1].min(),
            cx + r * pts[:, 0].max(), cy + r * pts[:, 1].max())


def _shape_mask(shape: str, size: int, cx: float, cy: float, r: float) -> Image.Image:
    pts, hole = _UNIT[shape]
    mask = Image.new("L", (size, size), 0)
    d = ImageDraw.Draw(mask)
    d.polygon(_poly(pts, cx, cy, r), fill=255)
    if hole is not None:
        d.polygon(_poly(hole, cx, cy, r), fill=0)
    return mask


def _jitter(rgb: RGB, rng: np.random.Generator, amount: float = 14) -> RGB:
    return tuple(int(np.clip(v + rng.uniform(-amount, amount), 0, 255)) for v in rgb)  # type: ignore[return-value]


def _shade(rgb: RGB, f: float) -> RGB:
    return tuple(int(np.clip(v * f, 0, 255)) for v in rgb)  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------- patterns
@dataclasses.dataclass(frozen=True)
class Pattern:
    n_colours: tuple[int, int]
    #: draw(draw, box=(x0, y0, x1, y1), r, colours[rgb], base_rgb, count, detail, rng)
    draw: Callable[..., None]
    #: describe(colour_words[str], count, rng) -> (adjective or None, "with ..." phrase)
    describe: Callable[..., tuple[str | None, str]]
    #: bands, checks and rings colour the whole object, so the base colour is not mentioned
    covers_base: bool = False


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _and(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _draw_plain(d, box, r, cols, base, n, detail, rng):
    pass


def _describe_plain(w, n, rng):
    return _pick(rng, ["plain", "solid", "smooth", None]), _pick(
        rng, ["a plain surface", "no markings", "a smooth, even surface", "a single flat colour"])


def _draw_bands(vertical: bool):
    def draw(d, box, r, cols, base, n, detail, rng):
        x0, y0, x1, y1 = box
        k = len(cols)
        for i, col in enumerate(cols):
            if vertical:
                d.rectangle([x0 + (x1 - x0) * i / k, y0, x0 + (x1 - x0) * (i + 1) / k, y1], fill=col)
            else:
                d.rectangle([x0, y0 + (y1 - y0) * i / k, x1, y0 + (y1 - y0) * (i + 1) / k], fill=col)
    return draw


def _describe_bands(vertical: bool):
    def describe(w, n, rng):
        k = len(w)
        orient = "vertical" if vertical else "horizontal"
        if vertical:
            places = ["on the left", "in the middle", "on the right"] if k == 3 else ["on the left", "on the right"]
        else:
            places = ["on top", "in the middle", "at the bottom"] if k == 3 else ["on top", "at the bottom"]
        options = [
            f"{orient} stripes of {_and(w)}",
            f"{_and(w)} {orient} bands",
            f"three {orient} bands: {', '.join(w)}" if k == 3 else f"two {orient} halves, {w[0]} and {w[1]}",
            _and([f"{c} {p}" for c, p in zip(w, places)]),
            f"{'a left part' if vertical else 'an upper part'} in {w[0]} and "
            f"{'a right part' if vertical else 'a lower part'} in {w[-1]}",
            f"colours {_and(w)} from {'left to right' if vertical else 'top to bottom'}",
        ]
        adj = _pick(rng, [f"{orient}ly striped", f"{'-'.join(w)} striped", None])
        return adj, _pick(rng, options)
    return describe


def _draw_stripes(d, box, r, cols, base, n, detail, rng):
    x0, y0, x1, y1 = box
    k = int(round(4 + 3 * (detail if detail is not None else rng.random())))
    amp, phase, width = rng.uniform(0.02, 0.08) * r, rng.uniform(0, 6.3), max(2.0, 0.09 * r)
    xs = np.linspace(x0, x1, 24)
    for i in range(k):
        y = y0 + (y1 - y0) * (i + 0.5) / k
        pts = [(x, y + amp * math.sin(phase + 6 * (x - x0) / max(1.0, x1 - x0) * math.pi)) for x in xs]
        d.line(pts, fill=cols[0], width=int(width))


def _draw_spots(d, box, r, cols, base, n, detail, rng):
    x0, y0, x1, y1 = box
    for _ in range(int(rng.integers(5, 9))):
        rr = rng.uniform(0.11, 0.17) * r
        cx, cy = rng.uniform(x0 + rr, x1 - rr), rng.uniform(y0 + rr, y1 - rr)
        d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=cols[0])


def _dots(d, box, r, col_fn, k, rad, rng):
    x0, y0, x1, y1 = box
    for _ in range(k):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        d.ellipse([cx - rad, cy - rad, cx + rad, cy + rad], fill=col_fn())


def _draw_speckles(d, box, r, cols, base, n, detail, rng):
    _dots(d, box, r, lambda: cols[0], int(rng.integers(22, 40)), max(1.3, 0.05 * r), rng)


def _draw_dimpled(d, box, r, cols, base, n, detail, rng):
    dark, light = _shade(base, 0.78), _shade(base, 1.12)
    _dots(d, box, r, lambda: dark if rng.random() < 0.6 else light, int(rng.integers(60, 100)),
          max(1.0, 0.045 * r), rng)


def _draw_checks(d, box, r, cols, base, n, detail, rng):
    x0, y0, x1, y1 = box
    k = int(round(4 + 4 * (detail if detail is not None else rng.random())))
    for i in range(k):
        for j in range(k):
            if (i + j) % 2:
                d.rectangle([x0 + (x1 - x0) * i / k, y0 + (y1 - y0) * j / k,
                             x0 + (x1 - x0) * (i + 1) / k, y0 + (y1 - y0) * (j + 1) / k], fill=cols[0])


def _center(box):
    x0, y0, x1, y1 = box
    return (x0 + x1) / 2, (y0 + y1) / 2, min(x1 - x0, y1 - y0) / 2


def _draw_rings(d, box, r, cols, base, n, detail, rng):
    cx, cy, h = _center(box)
    k = len(cols) + 1
    for i, col in enumerate(cols, start=1):
        rr = h * (k - i) / k
        d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=col)


def _draw_disc(d, box, r, cols, base, n, detail, rng):
    cx, cy, h = _center(box)
    rr = h * (0.3 + 0.3 * (detail if detail is not None else rng.random()))
    d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=cols[0])


def _draw_bar(d, box, r, cols, base, n, detail, rng):
    cx, cy, h = _center(box)
    d.rectangle([cx - 0.68 * h, cy - 0.17 * h, cx + 0.68 * h, cy + 0.17 * h], fill=cols[0])


def _draw_seams(d, box, r, cols, base, n, detail, rng):
    cx, cy, h = _center(box)
    w = max(2, int((0.07 + 0.06 * (detail if detail is not None else rng.random())) * h))
    off, rad = 1.35 * h, 0.98 * h
    d.ellipse([cx - off - rad, cy - rad, cx - off + rad, cy + rad], outline=cols[0], width=w)
    d.ellipse([cx + off - rad, cy - rad, cx + off + rad, cy + rad], outline=cols[0], width=w)


def _draw_lines(d, box, r, cols, base, n, detail, rng):
    cx, cy, h = _center(box)
    w = max(2, int(0.06 * h))
    d.line([(cx, cy - h), (cx, cy + h)], fill=cols[0], width=w)
    d.line([(cx - h, cy), (cx + h, cy)], fill=cols[0], width=w)
    off, rad = 1.2 * h, 0.85 * h
    d.ellipse([cx - off - rad, cy - rad, cx - off + rad, cy + rad], outline=cols[0], width=w)
    d.ellipse([cx + off - rad, cy - rad, cx + off + rad, cy + rad], outline=cols[0], width=w)


def _regular(cx, cy, rr, n, rot):
    return [(cx + rr * math.cos(rot + 2 * math.pi * i / n), cy + rr * math.sin(rot + 2 * math.pi * i / n))
            for i in range(n)]


def _draw_patches(d, box, r, cols, base, n, detail, rng):
    cx, cy, h = _center(box)
    rot = rng.uniform(0, 2 * math.pi)
    d.polygon(_regular(cx, cy, 0.3 * h, 5, rot), fill=cols[0])
    for i in range(5):
        a = rot + math.pi / 5 + 2 * math.pi * i / 5
        d.polygon(_regular(cx + 0.85 * h * math.cos(a), cy + 0.85 * h * math.sin(a), 0.28 * h, 5, a), fill=cols[0])


def _draw_craters(d, box, r, cols, base, n, detail, rng):
    x0, y0, x1, y1 = box
    dark, rim = _shade(base, 0.7), _shade(base, 1.15)
    for _ in range(int(rng.integers(5, 10))):
        rr = rng.uniform(0.06, 0.2) * r
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=dark, outline=rim, width=max(1, int(rr / 5)))


def _draw_blobs(d, box, r, cols, base, n, detail, rng):
    x0, y0, x1, y1 = box
    for i in range(int(rng.integers(4, 7))):
        col = cols[i % len(cols)]
        rr = rng.uniform(0.18, 0.34) * r
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        k = 9
        a = np.linspace(0, 2 * np.pi, k, endpoint=False)
        rad = rr * rng.uniform(0.55, 1.3, k)
        d.polygon([(cx + q * math.cos(b), cy + 0.8 * q * math.sin(b)) for q, b in zip(rad, a)], fill=col)


_PIP_LAYOUT = {
    1: [(0, 0)], 2: [(-1, -1), (1, 1)], 3: [(-1, -1), (0, 0), (1, 1)],
    4: [(-1, -1), (1, -1), (-1, 1), (1, 1)], 5: [(-1, -1), (1, -1), (0, 0), (-1, 1), (1, 1)],
    6: [(-1, -1), (1, -1), (-1, 0), (1, 0), (-1, 1), (1, 1)],
}


def _pips(d, cx, cy, h, k, col):
    rr = 0.14 * h
    for px, py in _PIP_LAYOUT[k]:
        x, y = cx + 0.52 * h * px, cy + 0.52 * h * py
        d.ellipse([x - rr, y - rr, x + rr, y + rr], fill=col)


def _draw_pips(d, box, r, cols, base, n, detail, rng):
    cx, cy, h = _center(box)
    _pips(d, cx, cy, h, n or int(rng.integers(1, 7)), cols[0])


def _draw_domino(d, box, r, cols, base, n, detail, rng):
    x0, y0, x1, y1 = box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    if (x1 - x0) >= (y1 - y0):  # wide: divide left/right
        d.line([(cx, y0), (cx, y1)], fill=cols[0], width=max(2, int(0.05 * r)))
        h = min((x1 - x0) / 4, (y1 - y0) / 2) * 0.9
        halves = [((x0 + cx) / 2, cy), ((cx + x1) / 2, cy)]
    else:
        d.line([(x0, cy), (x1, cy)], fill=cols[0], width=max(2, int(0.05 * r)))
        h = min((y1 - y0) / 4, (x1 - x0) / 2) * 0.9
        halves = [(cx, (y0 + cy) / 2), (cx, (cy + y1) / 2)]
    for hx, hy in halves:
        k = int(rng.integers(0, 7))
        if k:
            _pips(d, hx, hy, h, k, cols[0])


def _draw_lamps(d, box, r, cols, base, n, detail, rng):
    x0, y0, x1, y1 = box
    cx = (x0 + x1) / 2
    k = len(cols)
    rr = min((x1 - x0) * 0.36, (y1 - y0) / k * 0.4)
    for i, col in enumerate(cols):
        cy = y0 + (y1 - y0) * (i + 0.5) / k
        d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=col)


def _draw_lettering(d, box, r, cols, base, n, detail, rng):
    cx, cy, h = _center(box)
    k = int(rng.integers(3, 6))
    w = 1.3 * h / k
    lw = max(2, int(0.08 * h))
    for i in range(k):
        lx = cx - 0.65 * h + i * w + 0.12 * w
        top, bot, right = cy - 0.22 * h, cy + 0.22 * h, lx + 0.7 * w
        strokes = [[(lx, top), (lx, bot)], [(lx, top), (right, top)], [(right, top), (right, bot)],
                   [(lx, bot), (right, bot)], [(lx, cy), (right, cy)], [(lx, top), (right, bot)]]
        for j in rng.choice(len(strokes), size=3, replace=False):
            d.line(strokes[j], fill=cols[0], width=lw)


def _draw_exclamation(d, box, r, cols, base, n, detail, rng):
    cx, cy, h = _center(box)
    w = 0.09 * h
    d.polygon([(cx - w * 1.3, cy - 0.55 * h), (cx + w * 1.3, cy - 0.55 * h), (cx + w * 0.8, cy + 0.18 * h),
               (cx - w * 0.8, cy + 0.18 * h)], fill=cols[0])
    d.ellipse([cx - w * 1.2, cy + 0.3 * h, cx + w * 1.2, cy + 0.3 * h + 2.4 * w], fill=cols[0])


_SPRINKLE_COLOURS = ("red", "yellow", "blue", "green", "white", "pink", "purple")


def _draw_sprinkles(d, box, r, cols, base, n, detail, rng):
    x0, y0, x1, y1 = box
    for _ in range(int(rng.integers(16, 28))):
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        a, ln = rng.uniform(0, math.pi), 0.09 * r
        col = COLOURS[_SPRINKLE_COLOURS[int(rng.integers(len(_SPRINKLE_COLOURS)))]].rgb
        d.line([(cx - ln * math.cos(a), cy - ln * math.sin(a)), (cx + ln * math.cos(a), cy + ln * math.sin(a))],
               fill=col, width=max(2, int(0.05 * r)))


def _simple(adjs: Sequence[str | None], phrases: Sequence[str]):
    """A describe function from templates with ``{c}`` for the pattern's first colour."""
    def describe(w, n, rng):
        c = w[0] if w else ""
        adj = _pick(rng, list(adjs))
        return (adj.format(c=c) if adj else None), _pick(rng, list(phrases)).format(c=c)
    return describe


_NUM = ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _describe_pips(w, n, rng):
    c = w[0]
    if n:
        return None, _pick(rng, [f"{_NUM[n]} {c} dot{'s' * (n > 1)}", f"{_NUM[n]} round {c} pip{'s' * (n > 1)}",
                                 f"{c} dots", f"a pattern of {_NUM[n]} {c} spot{'s' * (n > 1)}"])
    return None, f"{c} dots"


def _describe_rings(w, n, rng):
    return _pick(rng, ["ringed", "concentric", None]), _pick(rng, [
        f"concentric rings of {_and(w)}", f"{_and(w)} rings one inside the other",
        f"nested circles of {_and(w)} from the outside in", f"a bullseye pattern of {_and(w)} rings"])


def _describe_lamps(w, n, rng):
    return None, _pick(rng, [
        f"three round lamps stacked vertically: {', '.join(w)}", f"{_and(w)} circles in a column",
        f"a {w[0]} lamp on top, a {w[1]} one in the middle and a {w[2]} one at the bottom",
        f"a column of {_and(w)} glowing circles"])


def _describe_blobs(w, n, rng):
    return _pick(rng, ["blotchy", "mottled", None]), _pick(rng, [
        f"irregular {_and(w)} patches", f"swirly {_and(w)} blotches", f"uneven patches of {_and(w)}"])


PATTERNS: dict[str, Pattern] = {
    "plain": Pattern((0, 0), _draw_plain, _describe_plain),
    "hbands": Pattern((2, 3), _draw_bands(False), _describe_bands(False), covers_base=True),
    "vbands": Pattern((2, 3), _draw_bands(True), _describe_bands(True), covers_base=True),
    "stripes": Pattern((1, 1), _draw_stripes, _simple(
        ["striped", "{c}-striped", None],
        ["thin {c} stripes", "wavy {c} stripes", "narrow {c} stripes running across it", "{c} streaks"])),
    "spots": Pattern((1, 1), _draw_spots, _simple(
        ["spotted", "{c}-spotted", "polka-dot"],
        ["{c} spots", "round {c} spots", "{c} polka dots", "a few big {c} dots"])),
    "speckles": Pattern((1, 1), _draw_speckles, _simple(
        ["speckled", "{c}-speckled", "freckled"],
        ["tiny {c} specks", "lots of small {c} flecks", "a sprinkling of tiny {c} dots", "{c} speckles"])),
    "dimpled": Pattern((0, 0), _draw_dimpled, _simple(
        ["dimpled", "pitted", "bumpy", "textured"],
        ["a dimpled surface", "a pitted, bumpy texture", "a finely textured surface covered in little pits",
         "tiny dimples all over"])),
    "checks": Pattern((1, 1), _draw_checks, _simple(
        ["checkered", "chequered", None],
        ["a checkered pattern of {c} squares", "alternating {c} squares in a grid", "{c} checks"])),
    "rings": Pattern((1, 4), _draw_rings, _describe_rings),
    "disc": Pattern((1, 1), _draw_disc, _simple(
        [None], ["a {c} circle in the middle", "a {c} disc in the centre", "a round {c} dot at its centre",
                 "a big {c} circle in the center"])),
    "bar": Pattern((1, 1), _draw_bar, _simple(
        [None], ["a {c} horizontal bar across the middle", "a thick {c} band across its centre",
                 "a {c} stripe straight across"])),
    "seams": Pattern((1, 1), _draw_seams, _simple(
        [None], ["curved {c} seams", "two curving {c} lines", "{c} curved stitching lines", "a curvy {c} seam"])),
    "lines": Pattern((1, 1), _draw_lines, _simple(
        ["lined", None], ["thin {c} lines crossing it", "{c} lines, some straight and some curved",
                          "a cross and two arcs drawn in {c}", "{c} grooves"])),
    "patches": Pattern((1, 1), _draw_patches, _simple(
        ["patched", "patchwork", None],
        ["{c} pentagon patches", "five-sided {c} patches", "{c} patches arranged around a central one"])),
    "craters": Pattern((0, 0), _draw_craters, _simple(
        ["cratered", "pockmarked", None],
        ["darker round craters", "craters", "shadowy circular pits", "a pockmarked, cratered surface"])),
    "blobs": Pattern((1, 2), _draw_blobs, _describe_blobs),
    "pips": Pattern((1, 1), _draw_pips, _describe_pips),
    "domino": Pattern((1, 1), _draw_domino, _simple(
        [None], ["a {c} line dividing it in two halves with {c} dots on each", "two halves with {c} dots",
                 "a {c} dividing line and groups of {c} dots"])),
    "lamps": Pattern((3, 3), _draw_lamps, _describe_lamps),
    "lettering": Pattern((1, 1), _draw_lettering, _simple(
        [None], ["{c} lettering", "{c} writing across the middle", "{c} block letters", "a {c} word written on it"])),
    "exclamation": Pattern((1, 1), _draw_exclamation, _simple(
        [None], ["a {c} exclamation mark", "a {c} exclamation point in the middle"])),
    "sprinkles": Pattern((0, 0), _draw_sprinkles, _simple(
        ["sprinkled", None], ["colourful sprinkles", "little multicoloured sprinkles",
                              "rainbow sprinkles scattered on top"])),
}


# ---------------------------------------------------------------------------------------- extras
@dataclasses.dataclass(frozen=True)
class Extra:
    default_colour: str
    behind: bool  # drawn behind the body (rays, head, post) or on top of it (stem, crown)
    #: describe(colour_word, rng) -> phrase
    describe: Callable[[str, np.random.Generator], str]


EXTRAS: dict[str, Extra] = {
    "stem": Extra("brown", False, lambda c, rng: _pick(rng, [
        f"a short {c} stem on top", f"a {c} stalk", f"a little {c} stalk sticking up"])),
    "leaf": Extra("green", False, lambda c, rng: _pick(rng, [
        f"a small {c} leaf on top", f"a single {c} leaf", f"a {c} leaf at the top"])),
    "stem and leaf": Extra("green", False, lambda c, rng: _pick(rng, [
        f"a brown stem and a {c} leaf", f"a stalk with a small {c} leaf", f"a {c} leaf beside a short stalk"])),
    "crown": Extra("green", False, lambda c, rng: _pick(rng, [
        f"a crown of {c} leaves on top", f"a {c} leafy top", f"a star of pointed {c} leaves at the top",
        f"topped with {c} leaves"])),
    "orbit": Extra("tan", True, lambda c, rng: _pick(rng, [
        f"a tilted {c} ring around it", f"a flat {c} band circling it", f"encircled by a {c} ring",
        f"a wide {c} halo ring around its middle"])),
    "rays": Extra("yellow", True, lambda c, rng: _pick(rng, [
        f"pointed {c} rays all around", f"{c} spikes radiating outwards", f"a ring of {c} triangular rays"])),
    "head": Extra("black", True, lambda c, rng: _pick(rng, [
        f"a small {c} head at the top", f"a little {c} half-circle at one end with two feelers",
        f"a {c} cap with antennae"])),
    "post": Extra("grey", True, lambda c, rng: _pick(rng, [
        f"a {c} post underneath", f"mounted on a {c} pole", f"standing on a thin {c} post"])),
}


def _draw_extra(name: str, d_back: ImageDraw.ImageDraw, d_front: ImageDraw.ImageDraw, shape: str,
                cx: float, cy: float, r: float, col: RGB, rng: np.random.Generator) -> None:
    x0, y0, x1, y1 = _bbox(shape, cx, cy, r)
    top = y0
    if name in ("stem", "stem and leaf"):
        lean = rng.uniform(-0.25, 0.25) * r
        stem = (116, 70, 34) if name == "stem and leaf" else col
        ln = rng.uniform(0.3, 0.55) * r
        d_front.line([(cx, top + 0.12 * r), (cx + lean, top - ln)], fill=stem, width=max(2, int(0.09 * r)))
    if name in ("leaf", "stem and leaf"):
        lx, ly = cx + 0.22 * r, top - 0.02 * r
        pts = [(lx - 0.05 * r, ly + 0.05 * r), (lx + 0.22 * r, ly - 0.2 * r), (lx + 0.5 * r, ly - 0.14 * r),
               (lx + 0.22 * r, ly + 0.02 * r)]
        d_front.polygon(pts, fill=col)
    if name == "crown":
        k = int(rng.integers(5, 8))
        bx, by = cx, top + 0.12 * r
        for i in range(k):
            a = math.radians(-190 + 200 * i / (k - 1) + rng.uniform(-8, 8))  # a fan over the top
            ln, side = rng.uniform(0.38, 0.5) * r, 0.1 * r
            tip = (bx + ln * math.cos(a), by + ln * math.sin(a))
            n = (-math.sin(a) * side, math.cos(a) * side)
            d_front.polygon([(bx + n[0], by + n[1]), tip, (bx - n[0], by - n[1])], fill=col)
        d_front.ellipse([bx - 0.12 * r, by - 0.12 * r, bx + 0.12 * r, by + 0.1 * r], fill=col)
    if name == "orbit":
        rx, ry, w = 1.62 * r, 0.42 * r, max(3, int(0.16 * r))
        box = [cx - rx, cy - ry, cx + rx, cy + ry]
        d_back.arc(box, 180, 360, fill=col, width=w)
        d_front.arc(box, 0, 180, fill=col, width=w)
    if name == "rays":
        k = int(rng.integers(8, 13))
        rot = rng.uniform(0, 2 * math.pi)
        for i in range(k):
            a = rot + 2 * math.pi * i / k
            da = math.pi / k * 0.55
            p1 = (cx + 1.08 * r * math.cos(a - da), cy + 1.08 * r * math.sin(a - da))
            p2 = (cx + 1.08 * r * math.cos(a + da), cy + 1.08 * r * math.sin(a + da))
            tip = (cx + 1.55 * r * math.cos(a), cy + 1.55 * r * math.sin(a))
            d_back.polygon([p1, tip, p2], fill=col)
    if name == "head":
        hr = 0.36 * r
        d_back.ellipse([cx - hr, top - 0.45 * hr, cx + hr, top + 1.55 * hr], fill=col)
        w = max(1, int(0.05 * r))
        d_back.line([(cx - 0.15 * r, top - 0.1 * r), (cx - 0.35 * r, top - 0.42 * r)], fill=col, width=w)
        d_back.line([(cx + 0.15 * r, top - 0.1 * r), (cx + 0.35 * r, top - 0.42 * r)], fill=col, width=w)
    if name == "post":
        w = 0.09 * r
        d_back.rectangle([cx - w, cy, cx + w, cy + 1.7 * r], fill=col)


# ---------------------------------------------------------------------------------------- rendering
def _background(name: str, rng: np.random.Generator) -> np.ndarray:
    """A ``[S, S, 3]`` float array (0-255) at the supersampled size."""
    s = _CANVAS
    yy = np.linspace(0, 1, s)[:, None, None]
    xx = np.linspace(0, 1, s)[None, :, None]

    def flat(rgb, grad=12.0):
        base = np.array(_jitter(rgb, rng, 8), dtype=np.float32)
        g = rng.uniform(-grad, grad) * (yy - 0.5) + rng.uniform(-grad, grad) * (xx - 0.5)
        return np.broadcast_to(base, (s, s, 3)) + g

    if name == "white":
        img = flat((248, 248, 246))
    elif name == "pale grey":
        img = flat((200, 200, 202))
    elif name == "dark grey":
        img = flat((72, 72, 76)) + rng.normal(0, 6, (s, s, 1))
    elif name == "black":
        img = flat((14, 14, 18), 6)
    elif name == "starry":
        img = flat((8, 8, 16), 4).copy()
        for _ in range(int(rng.integers(25, 60))):
            x, y = rng.integers(0, s, 2)
            img[y:y + 2, x:x + 2] = rng.uniform(150, 255)
    elif name == "sky":
        top, bot = np.array(_jitter((95, 155, 225), rng, 10)), np.array(_jitter((185, 215, 245), rng, 10))
        img = top + (bot - top) * yy + 0 * xx
    elif name == "grass":
        img = flat((70, 140, 52)).copy()
        noise = rng.normal(0, 14, (s // 4, s // 2, 1)).repeat(4, 0).repeat(2, 1)
        img = img + noise
    elif name == "wood":
        img = flat((168, 116, 66)).copy()
        rows = rng.normal(0, 10, (s, 1, 1)).cumsum(0) * 0.25
        grain = 10 * np.sin(np.linspace(0, rng.uniform(20, 40), s))[:, None, None] + rows
        img = img + grain
        for k in range(1, 4):  # plank joints
            y = int(s * k / 4 + rng.integers(-6, 6))
            img[y:y + 2] *= 0.65
    elif name == "sand":
        img = flat((226, 206, 166)) + rng.normal(0, 5, (s, s, 1))
    else:  # pragma: no cover - guarded by Scene.__post_init__
        raise ValueError(name)
    return np.clip(img, 0, 255).astype(np.float32)


def _render_thing(thing: Thing, r: float, rng: np.random.Generator,
                  palette: dict[str, RGB]) -> Image.Image:
    """One instance of ``thing`` with half-size ``r`` on a transparent RGBA canvas (centered)."""
    size = int(2 * r * 1.8) + 8
    cx = cy = size / 2
    shape = thing.shape
    base = palette[thing.colour]
    fill = Image.new("RGB", (size, size), base)
    d = ImageDraw.Draw(fill)
    box = _bbox(shape, cx, cy, r)
    cols = [palette[c] for c in thing.pattern_colours]
    PATTERNS[thing.pattern].draw(d, box, r, cols, base, thing.pattern_count, thing.detail, rng)
    mask = _shape_mask(shape, size, cx, cy, r)
    if thing.border is not None:
        bw = rng.uniform(0.1, 0.16) * r
        inner = _shape_mask(shape, size, cx, cy, r - bw)
        border = Image.new("RGB", (size, size), palette[thing.border])
        fill.paste(border, (0, 0), Image.fromarray(np.asarray(mask) & ~np.asarray(inner)))

    # lighting: a linear gradient, and sphere-like shading for round solid shapes
    arr = np.asarray(fill, dtype=np.float32)
    g = np.linspace(-1, 1, size)
    a = rng.uniform(0, 2 * math.pi)
    light = 1 + rng.uniform(0, 0.18) * (np.cos(a) * g[None, :] + np.sin(a) * g[:, None])
    if shape in _ROUND and rng.random() < 0.7:
        yy, xx = np.mgrid[0:size, 0:size]
        lx, ly = cx - 0.35 * r * np.cos(a), cy - 0.35 * r * np.sin(a)
        dist = np.sqrt((xx - lx) ** 2 + (yy - ly) ** 2) / (1.6 * r)
        light = light * (1.08 - 0.35 * np.clip(dist, 0, 1) ** 2)
    arr = np.clip(arr * light[:, :, None], 0, 255)
    body = Image.fromarray(arr.astype(np.uint8))
    if thing.glossy:
        hl = Image.new("L", (size, size), 0)
        hr = 0.22 * r
        hx, hy = cx - 0.4 * r * np.cos(a), cy - 0.4 * r * np.sin(a)
        ImageDraw.Draw(hl).ellipse([hx - hr, hy - 0.7 * hr, hx + hr, hy + 0.7 * hr], fill=170)
        hl = hl.filter(ImageFilter.GaussianBlur(0.12 * r))
        body = Image.composite(Image.new("RGB", (size, size), (255, 255, 255)), body,
                               Image.fromarray(np.minimum(np.asarray(hl), np.asarray(mask))))

    out = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    back, front = ImageDraw.Draw(out), None
    front_layer = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    front = ImageDraw.Draw(front_layer)
    if thing.extra is not None:
        ecol = palette[thing.extra_colour or EXTRAS[thing.extra].default_colour]
        _draw_extra(thing.extra, back, front, shape, cx, cy, r, ecol, rng)
    out.paste(body, (0, 0), mask)
    out = Image.alpha_composite(out, front_layer)
    angle = rng.uniform(-12, 12)
    return out.rotate(angle, resample=Image.Resampling.BILINEAR)


def render(scene: Scene, rng: np.random.Generator) -> Image.Image:
    """Draw ``scene`` as a ``IMAGE_SIZE`` x ``IMAGE_SIZE`` RGB image; nuisance comes from ``rng``."""
    thing = scene.thing
    # an ordered de-duplication: iterating a set of strings would depend on PYTHONHASHSEED
    used = dict.fromkeys([thing.colour, *thing.pattern_colours, thing.border, thing.extra_colour,
                          EXTRAS[thing.extra].default_colour if thing.extra else None])
    palette = {c: _jitter(COLOURS[c].rgb, rng) for c in used if c is not None}
    canvas = Image.fromarray(_background(scene.background, rng).astype(np.uint8))

    lo, hi = SIZES[thing.size][0]
    shrink = {1: 1.0, 2: 0.72, 3: 0.62}.get(scene.count, 0.48)
    r = rng.uniform(lo, hi) * _CANVAS * shrink
    margin = 0.92 * r
    placed: list[tuple[float, float]] = []
    for _ in range(scene.count):
        for _attempt in range(60):
            x = rng.uniform(margin, _CANVAS - margin) if scene.count > 1 else _CANVAS / 2 + rng.uniform(-1, 1) * max(0.0, _CANVAS / 2 - margin) * 0.6
            y = rng.uniform(margin, _CANVAS - margin) if scene.count > 1 else _CANVAS / 2 + rng.uniform(-1, 1) * max(0.0, _CANVAS / 2 - margin) * 0.6
            if all((x - px) ** 2 + (y - py) ** 2 > (1.75 * r) ** 2 for px, py in placed):
                break
        placed.append((x, y))
    for x, y in placed:
        rr = r * rng.uniform(0.92, 1.08)
        obj = _render_thing(thing, rr, rng, palette)
        canvas.paste(obj, (int(round(x - obj.width / 2)), int(round(y - obj.height / 2))), obj)

    img = canvas.reduce(_SS)
    # global nuisance: exposure, contrast, colour cast, blur, sensor noise
    arr = np.asarray(img, dtype=np.float32)
    mean = arr.mean()
    arr = (arr - mean) * rng.uniform(0.8, 1.1) + mean * rng.uniform(0.8, 1.15)
    arr = arr + rng.uniform(-8, 8, 3)
    img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.35:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 0.9)))
    noise = rng.uniform(0, 7)
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 1, (IMAGE_SIZE, IMAGE_SIZE, 3)) * noise
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------------------- captions
_COUNT_WORDS = {2: ("two", "a pair of"), 3: ("three",)}


def _count_phrase(n: int, rng: np.random.Generator) -> str:
    if n in _COUNT_WORDS:
        return _pick(rng, list(_COUNT_WORDS[n]))
    return _pick(rng, [_NUM[n], "several", "many", "a group of", "a cluster of", "a bunch of", "a handful of"])


def caption(scene: Scene, rng: np.random.Generator, drop: float = 0.2, focused: float = 0.3) -> str:
    """A natural-language description of ``scene``; wordings and word order vary.

    With probability ``focused`` the caption names only one or two of the scene's features ("a
    photo of an object, which has thin white stripes."); otherwise it describes the whole scene,
    leaving each optional part out with probability ``drop``.
    """
    if focused and rng.random() < focused:
        return _focused_caption(scene, rng)
    t = scene.thing
    many = scene.count > 1
    pat = PATTERNS[t.pattern]
    words = lambda c: _pick(rng, COLOURS[c].words)  # noqa: E731

    keep = lambda: rng.random() >= drop  # noqa: E731
    shape = _pick(rng, SHAPES[t.shape][1 if many else 0])
    if rng.random() < 0.06:
        shape = "objects" if many else _pick(rng, ["object", "shape", "thing"])
    adjs: list[str] = []
    if not many and keep():
        sw = _pick(rng, SIZES[t.size][1])
        if sw:
            adjs.append(sw)
    pat_adj, pat_phrase = pat.describe([words(c) for c in t.pattern_colours], t.pattern_count, rng)
    show_pattern = t.pattern != "plain" and (keep() or rng.random() < 0.5)
    if t.pattern == "plain":
        show_pattern = rng.random() < 0.25
    if t.glossy and keep():
        adjs.append(_pick(rng, ["shiny", "glossy"]))
    use_pat_adj = show_pattern and pat_adj is not None and rng.random() < 0.4
    if use_pat_adj:
        adjs.append(pat_adj)
    if not pat.covers_base and keep():
        adjs.append(words(t.colour))
    np_ = " ".join([*adjs, shape])

    mods: list[str] = []
    if show_pattern and not use_pat_adj:
        mods.append(pat_phrase)
    if t.border is not None and keep():
        c = words(t.border)
        mods.append(_pick(rng, [f"a thick {c} border", f"a {c} rim", f"a {c} edge", f"a {c} outline"]))
    if t.extra is not None and keep():
        mods.append(EXTRAS[t.extra].describe(words(t.extra_colour or EXTRAS[t.extra].default_colour), rng))
    order = rng.permutation(len(mods))
    mods = [mods[i] for i in order]
    if mods:
        np_ = f"{np_} with {_and(mods)}"
    if many:
        np_ = f"{_count_phrase(scene.count, rng)} {np_}"
    else:
        np_ = f"{'an' if np_[0] in 'aeiou' else 'a'} {np_}"

    bg = _pick(rng, BACKGROUNDS[scene.background])
    if not keep():
        templates = ["{x}", "a photo of {x}", "a picture of {x}", "an image showing {x}", "there is {x}"]
    else:
        templates = ["{x} on {b}", "{x} against {b}", "a photo of {x} on {b}", "a picture of {x} in front of {b}",
                     "on {b}, {x}", "{b} with {x} in front", "an image of {x}, {b} behind it",
                     "a close-up of {x} over {b}"]
    return _fix_articles(_pick(rng, templates).format(x=np_, b=bg))


_SIZE_NOUN = {"small": ("a small size", "a tiny size"), "medium": ("a medium size",),
              "large": ("a large size", "a big size")}


def _focused_caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption about one or two features of the scene, in the "which has ..." style."""
    t = scene.thing
    pat = PATTERNS[t.pattern]
    words = lambda c: _pick(rng, COLOURS[c].words)  # noqa: E731
    facts: list[str] = []
    if not pat.covers_base:
        facts.append(_pick(rng, ["a {c} colour", "a {c} surface", "a {c} body", "a {c} finish"]).format(c=words(t.colour)))
    facts.append(_pick(rng, ["the shape of {a}", "{a} outline", "the outline of {a}"]).format(
        a=_article(_pick(rng, SHAPES[t.shape][0]))))
    if t.pattern != "plain":
        facts.append(pat.describe([words(c) for c in t.pattern_colours], t.pattern_count, rng)[1])
    if t.border is not None:
        facts.append(_pick(rng, ["a thick {c} border", "a {c} rim", "a {c} outline"]).format(c=words(t.border)))
    if t.extra is not None:
        facts.append(EXTRAS[t.extra].describe(words(t.extra_colour or EXTRAS[t.extra].default_colour), rng))
    if t.glossy:
        facts.append(_pick(rng, ["a shiny surface", "a glossy finish", "a bright highlight"]))
    facts.append(_pick(rng, list(_SIZE_NOUN[t.size])))
    facts.append(_pick(rng, ["{b} behind it", "{b} around it"]).format(
        b=_pick(rng, BACKGROUNDS[scene.background])))
    k = 1 if rng.random() < 0.6 else 2
    chosen = [facts[i] for i in sorted(rng.choice(len(facts), size=min(k, len(facts)), replace=False))]
    f = _and(chosen)
    many = scene.count > 1
    templates = (["a photo of {n} things, which have {f}.", "{n} objects with {f}", "a picture of {n} shapes that have {f}"]
                 if many else
                 ["a photo of a thing, which has {f}.", "a photo of an object, which has {f}.", "something with {f}",
                  "an object that has {f}", "a picture of a shape with {f}", "{f}", "a close-up of something with {f}"])
    return _fix_articles(_pick(rng, templates).format(f=f, n=_count_phrase(scene.count, rng)))


def _article(np_: str) -> str:
    return f"{'an' if np_[0] in 'aeiou' else 'a'} {np_}"


def _fix_articles(text: str) -> str:
    return re.sub(r"\ba (?=[aeiou])", "an ", text)


# ---------------------------------------------------------------------------------------- sampling
_BANDS_MAX = {"hbands": 3, "vbands": 3}


def random_scene(rng: np.random.Generator) -> Scene:
    """A random combination of attributes: the training distribution (no class is favoured)."""
    names = list(COLOURS)
    shape = _pick(rng, list(SHAPES))
    colour = _pick(rng, names)
    pattern = "plain" if rng.random() < 0.22 else _pick(rng, [p for p in PATTERNS if p != "plain"])
    lo, hi = PATTERNS[pattern].n_colours
    k = int(rng.integers(lo, hi + 1))
    pool = [c for c in names if c != colour]
    pcols = tuple(str(c) for c in rng.choice(pool, size=k, replace=False)) if k else ()
    count = 0
    if pattern == "pips":
        count = int(rng.integers(1, 7))
    border = _pick(rng, [c for c in names if c != colour]) if rng.random() < 0.15 else None
    extra = ecol = None
    if rng.random() < 0.28:
        extra = _pick(rng, list(EXTRAS))
        if rng.random() < 0.4:
            ecol = _pick(rng, names)
    size = _pick(rng, list(SIZES))
    u = rng.random()
    n = 1 if u < 0.62 else 2 if u < 0.72 else 3 if u < 0.8 else int(rng.integers(4, 10))
    bg_options = [b for b in BACKGROUNDS if not _clashes(b, colour)]
    background = _pick(rng, bg_options)
    thing = Thing(shape, colour, pattern, pcols, count, border, extra, ecol, size, bool(rng.random() < 0.2))
    return Scene(thing, n, background)


_BG_COLOUR = {"white": "white", "pale grey": "grey", "dark grey": "grey", "black": "black", "starry": "black",
              "sky": "pale blue", "grass": "green", "wood": "brown", "sand": "tan"}


def _clashes(background: str, colour: str) -> bool:
    """Whether an object of ``colour`` would be hard to see on ``background``."""
    return _BG_COLOUR[background] == colour


def make_rng(*key: int) -> np.random.Generator:
    """A generator for one item, addressed by integer key parts (seed, stream, index, ...)."""
    return np.random.default_rng(np.random.SeedSequence(list(key)))


def map_jobs(fn: Callable, jobs: Sequence, workers: int = 1) -> list:
    """``[fn(j) for j in jobs]``, in ``workers`` processes when more than one (same results: every
    image is a pure function of its key, whichever process renders it)."""
    if workers > 1 and len(jobs) > 1:
        import multiprocessing as mp

        with mp.get_context().Pool(min(workers, len(jobs))) as pool:
            return pool.map(fn, jobs)
    return [fn(j) for j in jobs]


def caption_vocabulary() -> set[str]:
    """Every word that the caption tables can produce (for hygiene checks)."""
    texts: list[str] = []
    for c in COLOURS.values():
        texts += c.words
    for sing, plur in SHAPES.values():
        texts += [*sing, *plur]
    for bgs in BACKGROUNDS.values():
        texts += bgs
    for s in SIZES.values():
        texts += s[1]
    texts += _NUM + ["several many a group of cluster bunch handful pair objects object shape thing"]
    texts += [w for v in _SIZE_NOUN.values() for w in v]
    texts += ["a colour surface body finish the shape of outline behind around in background photo picture "
              "things which have has with that close up something image showing there is on against front over"]
    return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}
