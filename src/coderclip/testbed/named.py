"""Named objects of the training world and captions that name them (web alt-text style).

Real CLIP learned what "lime" looks like from captions that contain the word. To put the testbed in
that regime, a share of training scenes show a *named object* — one of the 45 evaluation classes or
one of the distractor objects below — drawn from its recipe on the training random stream, and their
captions name it part of the time ("a photo of a lime", "two limes on a wooden table"), with noise:
sometimes the name is missing (a purely descriptive caption), sometimes it is wrong (another
object's name). The test images come from other seeds and another stream (see docs/testbed.md).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from . import classes as tc
from .world import BACKGROUNDS, Scene, Thing, caption

Recipe = Callable[[np.random.Generator], Scene]


@dataclasses.dataclass(frozen=True)
class NamedObject:
    """An object with a name: its recipe, the ways a caption names one or several of them."""

    name: str
    recipe: Recipe
    singular: tuple[str, ...]  # noun phrases for one ("a lime", "the flag of France", "Mars")
    plural: tuple[str, ...] = ()  # nouns for several ("limes"); empty: never several


def _p(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _spec(shapes: Sequence[str], colours: Sequence[str], patterns: Sequence[tuple[str, tuple[str, ...]]] = (("plain", ()),),
          extras: Sequence[tuple[str | None, str | None]] = ((None, None),), borders: Sequence[str | None] = (None,),
          sizes: Sequence[str] = ("small", "medium"), counts: Sequence[int] = (1,),
          backgrounds: Sequence[str] = ("white", "pale grey", "wood"), glossy: float = 0.3) -> Recipe:
    """A recipe choosing uniformly among the given options for each attribute."""
    def recipe(rng: np.random.Generator) -> Scene:
        pattern, pcols = _p(rng, patterns)
        extra, ecol = _p(rng, extras)
        thing = Thing(_p(rng, shapes), _p(rng, colours), pattern, tuple(pcols), border=_p(rng, borders),
                      extra=extra, extra_colour=ecol, size=_p(rng, sizes), glossy=bool(rng.random() < glossy),
                      pattern_count=int(rng.integers(1, 7)) if pattern == "pips" else 0)
        return Scene(thing, int(_p(rng, counts)), _p(rng, backgrounds))
    return recipe


def _a(noun: str) -> str:
    return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun}"


_FEW = (1, 1, 1, 2, 3)
_MANY = (4, 5, 6, 7, 8, 9)
_SPACE = ("starry", "black")
_SKY = ("sky", "pale grey", "grass")


def _tricolour(country: str, adjective: str, bands: str, colours: tuple[str, str, str]):
    """A three-band flag distractor: ``bands`` is "hbands" or "vbands"; the flag's body takes the
    first band's colour."""
    return (f"flag of {country}", (f"the flag of {country}", f"the {adjective} flag"),
            (f"{adjective} flags",),
            _spec(["rectangle"], [colours[0]], [(bands, colours)], sizes=["medium", "large"],
                  backgrounds=_SKY, glossy=0.0))

#: Objects that are not evaluation classes: (name, singular noun phrases, plural nouns, recipe).
DISTRACTORS: list[NamedObject] = [NamedObject(n, r, s, p) for n, s, p, r in [
    ("coin", ("a coin", "a penny"), ("coins",),
     _spec(["circle"], ["yellow", "grey", "tan"], [("plain", ()), ("rings", ("grey",))], borders=["grey", "yellow"],
           sizes=["small"], counts=_FEW, glossy=0.7)),
    ("button", ("a button", "a sewing button"), ("buttons",),
     _spec(["circle", "rounded square"], ["red", "blue", "white", "black", "brown"], [("pips", ("black",)), ("pips", ("white",))],
           sizes=["small"], counts=_FEW)),
    ("cookie", ("a cookie", "a biscuit", "a chocolate chip cookie"), ("cookies", "biscuits"),
     _spec(["circle"], ["tan", "brown"], [("spots", ("brown",)), ("speckles", ("brown",))], counts=_FEW)),
    ("pizza", ("a pizza",), ("pizzas",),
     _spec(["circle"], ["orange", "rust"], [("spots", ("red",)), ("spots", ("dark red",))], borders=["tan"],
           sizes=["large"], backgrounds=["wood", "white"])),
    ("clock", ("a clock", "a wall clock"), ("clocks",),
     _spec(["circle"], ["white"], [("lines", ("black",))], borders=["black", "grey", "red"], sizes=["medium", "large"])),
    ("plate", ("a plate", "a dinner plate"), ("plates",),
     _spec(["circle"], ["white"], [("rings", ("pale blue",)), ("rings", ("grey",)), ("plain", ())], sizes=["large"],
           backgrounds=["wood", "dark grey"])),
    ("tyre", ("a tyre", "a tire", "a car tyre"), ("tyres", "tires"),
     _spec(["ring"], ["black"], sizes=["medium", "large"], backgrounds=["dark grey", "white", "sand"])),
    ("pumpkin", ("a pumpkin",), ("pumpkins",),
     _spec(["circle", "oval"], ["orange"], [("seams", ("rust",)), ("plain", ())], extras=[("stem", None)],
           sizes=["medium", "large"], backgrounds=["grass", "wood"])),
    ("peach", ("a peach",), ("peaches",),
     _spec(["circle"], ["pink", "orange"], extras=[("leaf", None), (None, None)], counts=_FEW,
           backgrounds=["white", "wood"])),
    ("plum", ("a plum",), ("plums",),
     _spec(["oval", "circle"], ["purple", "dark red"], extras=[("stem", None), (None, None)], counts=_FEW, glossy=0.6)),
    ("grapes", ("a bunch of grapes", "grapes"), ("grapes",),
     _spec(["circle"], ["purple", "yellow-green"], sizes=["small"], counts=_MANY, glossy=0.5)),
    ("peas", ("peas", "green peas"), ("peas",),
     _spec(["circle"], ["green"], sizes=["small"], counts=_MANY, backgrounds=["white", "wood"])),
    ("banana", ("a banana",), ("bananas",),
     _spec(["crescent"], ["yellow"], extras=[("stem", None), (None, None)], counts=_FEW, sizes=["medium"])),
    ("pear", ("a pear",), ("pears",),
     _spec(["tall oval"], ["yellow-green", "green", "tan"], extras=[("stem", None), ("stem and leaf", None)],
           counts=_FEW)),
    ("avocado", ("an avocado",), ("avocados",),
     _spec(["tall oval", "oval"], ["dark green"], [("plain", ()), ("disc", ("brown",))], counts=_FEW)),
    ("kiwi", ("a kiwi", "a kiwi fruit"), ("kiwis",),
     _spec(["oval"], ["brown"], [("speckles", ("tan",))], counts=_FEW)),
    ("coconut", ("a coconut",), ("coconuts",),
     _spec(["circle"], ["brown"], [("speckles", ("tan",)), ("plain", ())], sizes=["medium"], backgrounds=["sand", "wood"])),
    ("pineapple", ("a pineapple",), ("pineapples",),
     _spec(["tall oval"], ["yellow", "orange"], [("checks", ("brown",))], extras=[("crown", None)], sizes=["medium", "large"])),
    ("carrot", ("a carrot",), ("carrots",),
     _spec(["teardrop"], ["orange"], extras=[("crown", None)], counts=_FEW)),
    ("onion", ("an onion",), ("onions",),
     _spec(["circle"], ["tan", "purple", "white"], [("stripes", ("brown",)), ("plain", ())], extras=[("stem", None)],
           counts=_FEW)),
    ("potato", ("a potato",), ("potatoes",),
     _spec(["oval"], ["tan", "brown"], [("speckles", ("brown",)), ("plain", ())], counts=_FEW)),
    ("aubergine", ("an aubergine", "an eggplant"), ("aubergines", "eggplants"),
     _spec(["tall oval"], ["purple", "navy"], extras=[("crown", None)], glossy=0.8)),
    ("chocolate bar", ("a chocolate bar", "a bar of chocolate"), ("chocolate bars",),
     _spec(["rectangle"], ["brown", "dark red"], [("checks", ("brown",))])),
    ("cheese", ("a wedge of cheese", "a piece of cheese"), ("wedges of cheese",),
     _spec(["triangle"], ["yellow", "tan"], [("craters", ()), ("plain", ())], backgrounds=["wood", "white"])),
    ("pancake", ("a pancake",), ("pancakes",),
     _spec(["circle"], ["tan"], [("speckles", ("brown",)), ("plain", ())], sizes=["medium", "large"])),
    ("bagel", ("a bagel",), ("bagels",),
     _spec(["ring"], ["tan", "brown"], [("speckles", ("white",)), ("plain", ())], counts=_FEW)),
    ("croissant", ("a croissant",), ("croissants",),
     _spec(["crescent"], ["tan", "orange"], [("lines", ("brown",)), ("plain", ())], glossy=0.6, counts=_FEW)),
    ("lollipop", ("a lollipop",), ("lollipops",),
     _spec(["circle"], ["pink", "red", "purple"], [("rings", ("white",)), ("rings", ("yellow", "white"))],
           extras=[("post", "white")], glossy=0.8)),
    ("mushroom", ("a mushroom", "a toadstool"), ("mushrooms", "toadstools"),
     _spec(["oval", "crescent"], ["red", "brown"], [("spots", ("white",)), ("plain", ())], extras=[("post", "white")],
           backgrounds=["grass"])),
    ("bee", ("a bee", "a bumblebee"), ("bees",),
     _spec(["oval"], ["yellow", "orange"], [("stripes", ("black",))], extras=[("head", None)], sizes=["small"],
           backgrounds=["grass", "sky"])),
    ("beetle", ("a beetle",), ("beetles",),
     _spec(["oval", "circle"], ["dark green", "navy", "brown", "black"], extras=[("head", None)], sizes=["small"],
           glossy=0.8, backgrounds=["grass", "sand", "wood"])),
    ("turtle", ("a turtle", "a tortoise"), ("turtles",),
     _spec(["oval"], ["dark green", "brown"], [("patches", ("tan",)), ("patches", ("brown",))], extras=[("head", "green")],
           backgrounds=["grass", "sand"])),
    ("balloon", ("a balloon",), ("balloons",),
     _spec(["tall oval", "circle"], ["red", "blue", "yellow", "pink", "purple"], extras=[("post", "white")], glossy=0.9,
           backgrounds=["sky", "white"], counts=_FEW)),
    ("tree", ("a tree",), ("trees",),
     _spec(["circle", "oval"], ["green", "dark green"], extras=[("post", "brown")], sizes=["medium", "large"],
           backgrounds=["sky", "white"], glossy=0.0)),
    ("cloud", ("a cloud",), ("clouds",),
     _spec(["oval"], ["white", "grey"], sizes=["medium", "large"], backgrounds=["sky"], glossy=0.0)),
    ("kite", ("a kite",), ("kites",),
     _spec(["diamond"], ["red", "yellow", "blue", "purple"], [("plain", ()), ("lines", ("white",))],
           borders=[None, "black"], backgrounds=["sky"])),
    ("gemstone", ("a gemstone", "a jewel"), ("gemstones", "jewels"),
     _spec(["diamond", "hexagon", "octagon"], ["pale blue", "dark red", "dark green", "purple"], glossy=1.0,
           sizes=["small"], backgrounds=["black", "white", "pale grey"])),
    ("starfish", ("a starfish",), ("starfish",),
     _spec(["star"], ["orange", "pink", "rust"], [("speckles", ("white",)), ("plain", ())], backgrounds=["sand"])),
    ("sheriff's badge", ("a sheriff's badge", "a sheriff star"), ("sheriff's badges",),
     _spec(["star"], ["yellow", "grey"], [("disc", ("grey",)), ("plain", ())], sizes=["small"], glossy=0.8,
           backgrounds=["wood", "black", "white"])),
    ("shield", ("a shield", "a coat of arms"), ("shields",),
     _spec(["teardrop", "inverted triangle"], ["blue", "red", "grey"], [("bar", ("white",)), ("bar", ("yellow",)), ("plain", ())],
           borders=["yellow", "grey"], sizes=["medium", "large"])),
    ("gift box", ("a gift box", "a present", "a wrapped gift"), ("gift boxes", "presents"),
     _spec(["square"], ["red", "blue", "green", "purple"], [("bar", ("yellow",)), ("bar", ("white",))], counts=_FEW)),
    ("window", ("a window",), ("windows",),
     _spec(["square", "tall rectangle"], ["pale blue"], [("lines", ("white",))], borders=["white", "brown"],
           sizes=["medium", "large"], backgrounds=["pale grey", "sand"])),
    ("brick", ("a brick",), ("bricks",),
     _spec(["rectangle"], ["rust", "dark red"], [("speckles", ("brown",)), ("plain", ())], counts=_FEW,
           backgrounds=["dark grey", "white"])),
    ("ice cube", ("an ice cube",), ("ice cubes",),
     _spec(["square", "rounded square"], ["pale blue", "white"], glossy=1.0, counts=_FEW,
           backgrounds=["dark grey", "black", "pale grey"])),
    ("envelope", ("an envelope", "a letter"), ("envelopes",),
     _spec(["rectangle"], ["white", "tan"], [("lines", ("grey",)), ("plain", ())], sizes=["medium"])),
    ("playing card", ("a playing card",), ("playing cards",),
     _spec(["tall rectangle"], ["white"], [("pips", ("red",)), ("pips", ("black",))], borders=["red", "black"],
           counts=_FEW, backgrounds=["grass", "wood"])),
    ("book", ("a book",), ("books",),
     _spec(["tall rectangle"], ["red", "blue", "dark green", "brown", "navy"], [("lettering", ("yellow",)), ("lettering", ("white",))],
           sizes=["medium"])),
    ("mailbox", ("a mailbox", "a postbox"), ("mailboxes",),
     _spec(["tall rectangle", "tall oval"], ["red", "blue"], [("bar", ("black",)), ("plain", ())],
           extras=[("post", "grey")], backgrounds=["grass", "sky"])),
    ("street lamp", ("a street lamp", "a lamp post"), ("street lamps",),
     _spec(["circle", "tall oval"], ["yellow", "white"], extras=[("post", "black"), ("post", "grey")], glossy=0.8,
           backgrounds=["dark grey", "black", "starry"])),
    ("snowflake", ("a snowflake",), ("snowflakes",),
     _spec(["star", "hexagon"], ["white", "pale blue"], [("lines", ("white",)), ("plain", ())], counts=(1, 2, 5, 7),
           backgrounds=["sky", "dark grey", "black"])),
    ("volleyball", ("a volleyball",), ("volleyballs",),
     _spec(["circle"], ["white", "yellow"], [("lines", ("blue",)), ("seams", ("blue",))], backgrounds=["sand", "grass"])),
    ("bowling pin", ("a bowling pin", "a skittle"), ("bowling pins", "skittles"),
     _spec(["tall oval"], ["white"], [("bar", ("red",))], counts=(1, 3, 4, 6), backgrounds=["wood"])),
    ("Neptune", ("Neptune", "the planet Neptune"), (),
     _spec(["circle"], ["blue", "navy"], [("stripes", ("pale blue",)), ("plain", ())], sizes=["medium", "large"],
           backgrounds=_SPACE, glossy=0.0)),
    ("Uranus", ("Uranus", "the planet Uranus"), (),
     _spec(["circle"], ["pale blue"], extras=[(None, None), ("orbit", "white")], sizes=["medium", "large"],
           backgrounds=_SPACE, glossy=0.0)),
    ("Venus", ("Venus", "the planet Venus"), (),
     _spec(["circle"], ["tan", "yellow"], [("blobs", ("white",)), ("plain", ())], sizes=["medium", "large"],
           backgrounds=_SPACE, glossy=0.0)),
    ("comet", ("a comet",), ("comets",),
     _spec(["teardrop", "oval"], ["white", "pale blue"], sizes=["small", "medium"], backgrounds=_SPACE)),
    _tricolour("Austria", "Austrian", "hbands", ("red", "white", "red")),
    _tricolour("Hungary", "Hungarian", "hbands", ("red", "white", "green")),
    _tricolour("Lithuania", "Lithuanian", "hbands", ("yellow", "green", "red")),
    _tricolour("Estonia", "Estonian", "hbands", ("blue", "black", "white")),
    _tricolour("Bulgaria", "Bulgarian", "hbands", ("white", "green", "red")),
    _tricolour("Yemen", "Yemeni", "hbands", ("red", "white", "black")),
    _tricolour("Romania", "Romanian", "vbands", ("blue", "yellow", "red")),
    _tricolour("Mali", "Malian", "vbands", ("green", "yellow", "red")),
    _tricolour("Peru", "Peruvian", "vbands", ("red", "white", "red")),
    _tricolour("Nigeria", "Nigerian", "vbands", ("green", "white", "green")),
    _tricolour("Guinea", "Guinean", "vbands", ("red", "yellow", "green")),
    ("flag of Palau", ("the flag of Palau",), (),
     _spec(["rectangle"], ["pale blue"], [("disc", ("yellow",))], sizes=["medium", "large"], backgrounds=_SKY, glossy=0.0)),
]]

#: How captions name the evaluation classes: extra noun phrases and plurals (the class name itself
#: is always one of the ways). Written from general usage, independently of the knowledge pack.
_CLASS_WORDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lime": ((), ("limes",)), "lemon": ((), ("lemons",)),
    "tangerine": (("a mandarin", "a clementine"), ("tangerines", "mandarins")),
    "apple": ((), ("apples",)), "tomato": ((), ("tomatoes",)), "cherry": ((), ("cherries",)),
    "strawberry": ((), ("strawberries",)), "watermelon": ((), ("watermelons",)),
    "blueberries": (("blueberries", "a handful of blueberries"), ("blueberries",)),
    "egg": (("a hen's egg",), ("eggs",)), "donut": (("a doughnut",), ("donuts", "doughnuts")),
    "tennis ball": ((), ("tennis balls",)), "basketball": ((), ("basketballs",)),
    "golf ball": ((), ("golf balls",)), "baseball": ((), ("baseballs",)),
    "soccer ball": (("a football",), ("soccer balls", "footballs")),
    "billiard ball": (("a pool ball", "an eight ball"), ("billiard balls", "pool balls")),
    "stop sign": ((), ("stop signs",)), "yield sign": (("a give way sign",), ("yield signs",)),
    "no entry sign": (("a do not enter sign",), ("no entry signs",)),
    "warning sign": (("a caution sign",), ("warning signs",)),
    "traffic light": (("a traffic signal", "a stoplight"), ("traffic lights",)),
    "Mars": (("the planet Mars", "the red planet"), ()), "Earth": (("the planet Earth", "our planet"), ()),
    "Saturn": (("the planet Saturn",), ()), "Jupiter": (("the planet Jupiter",), ()),
    "moon": (("the moon", "the full moon"), ()), "sun": (("the sun",), ()),
    "die": (("a dice",), ("dice",)), "domino": (("a domino tile",), ("dominoes",)),
    "chessboard": (("a chess board",), ("chessboards",)),
    "archery target": (("a bullseye target", "a dartboard-like target"), ("archery targets",)),
    "ladybug": (("a ladybird",), ("ladybugs", "ladybirds")),
}


def _class_object(i: int) -> NamedObject:
    c = tc.CLASSES[i]
    extra, plural = _CLASS_WORDS.get(c.name, ((), ()))
    if c.name.startswith("flag of "):
        country = c.name[len("flag of "):]
        base = (f"the {c.name}", f"the flag of {country}")
        plural = plural or (f"flags of {country}",)
    elif c.name[0].isupper() or c.name in ("moon", "sun"):
        base = ()
    else:
        base = (_a(c.name),)
    return NamedObject(c.name, c.recipe, tuple(dict.fromkeys(base + extra)) or (c.name,), plural)


#: Every named object: the evaluation classes first (in class order), then the distractors.
NAMED_OBJECTS: list[NamedObject] = [_class_object(i) for i in range(len(tc.CLASSES))] + DISTRACTORS


@dataclasses.dataclass(frozen=True)
class NamingRates:
    """The dial of the training data: how often scenes show named objects and captions name them."""

    named: float = 0.3  # share of training scenes that show a named object
    name: float = 0.5  # of those, share whose caption names it
    wrong: float = 0.1  # of the naming captions, share that use another object's name


def name_phrase(obj: NamedObject, count: int, rng: np.random.Generator) -> str:
    """A noun phrase naming ``count`` copies of ``obj`` ("a lime", "three limes", "Mars")."""
    from .world import _count_phrase

    if count > 1 and obj.plural:
        return f"{_count_phrase(count, rng)} {_p(rng, obj.plural)}"
    return _p(rng, obj.singular)


def named_caption(obj: NamedObject, scene: Scene, rng: np.random.Generator) -> str:
    """A caption that names ``obj`` (shown as ``scene``): the name alone in a short alt-text
    template, or the name beside a description of the scene."""
    x = name_phrase(obj, scene.count, rng)
    u = rng.random()
    if u < 0.5:
        bg = _p(rng, BACKGROUNDS[scene.background])
        return _p(rng, ["{x}", "a photo of {x}", "a picture of {x}", "{x} on {b}", "a photo of {x} on {b}",
                        "a close-up of {x}", "{x} against {b}", "an image of {x}"]).format(x=x, b=bg)
    desc = caption(scene, rng)
    return _p(rng, ["{x}: {d}", "{d}, {x}", "{x}, {d}", "a photo of {x}, {d}"]).format(x=x, d=desc)


def training_scene_named(rng: np.random.Generator, rates: NamingRates) -> tuple[Scene, int] | None:
    """With probability ``rates.named``, a named object's scene and the object's index into
    :data:`NAMED_OBJECTS` (uniform over objects); else ``None``."""
    if rng.random() >= rates.named:
        return None
    k = int(rng.integers(len(NAMED_OBJECTS)))
    return NAMED_OBJECTS[k].recipe(rng), k


def caption_named(k: int, scene: Scene, rng: np.random.Generator, rates: NamingRates) -> str:
    """A caption of named object ``k``'s scene: its name with probability ``rates.name`` (another
    object's name a ``rates.wrong`` share of those times), else a purely descriptive caption."""
    if rng.random() >= rates.name:
        return caption(scene, rng)
    if rng.random() < rates.wrong:
        k = (k + 1 + int(rng.integers(len(NAMED_OBJECTS) - 1))) % len(NAMED_OBJECTS)
    return named_caption(NAMED_OBJECTS[k], scene, rng)
