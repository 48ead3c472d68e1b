"""The questions the generator asks, one builder per knowledge type, in our own wording.

Each builder returns a :class:`Prompt`: chat messages plus the JSON schema of the expected answer.
With ``structured=True`` the wording asks for that JSON object (the backend also enforces the
schema); otherwise it asks for a plain bulleted list, which :mod:`.parsing` reads robustly.
Change :data:`PROMPT_VERSION` whenever a wording changes: it is recorded in provenance and in the
journal keys, so a changed prompt is asked again rather than served from an old answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

PROMPT_VERSION = "coderclip-atg-prompts-2"

SYSTEM = (
    "You help build a visual recognition system. You answer with short, concrete phrases about "
    "what can be seen in an ordinary photograph. You never explain or add commentary."
)

_LIST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"items": {"type": "array", "items": {"type": "string"}}},
    "required": ["items"],
    "additionalProperties": False,
}

_PAIR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"first": {"type": "array", "items": {"type": "string"}},
                   "second": {"type": "array", "items": {"type": "string"}}},
    "required": ["first", "second"],
    "additionalProperties": False,
}


#: The worked example in the attributes question (small models sometimes copy it back: such
#: items are dropped).
ATTRIBUTE_EXAMPLE = ("an oval shape with a small point at each end", "a bright yellow, dimpled peel",
                     "a glossy surface", "pale yellow segments when cut open",
                     "a small green stem scar")


@dataclasses.dataclass(frozen=True)
class Prompt:
    """Messages for one question, and the schema of its answer."""

    kind: str
    messages: tuple[dict[str, str], ...]
    schema: dict[str, Any]
    schema_name: str

    @property
    def user_text(self) -> str:
        return self.messages[-1]["content"]


def describe_class(name: str, subject: str, description: str | None) -> str:
    """How a class is named in a question: the domain's noun phrase (which contains the name),
    quoted, plus the class description if the class list gives one."""
    text = f'"{subject}"' if name.casefold() in subject.casefold() else f'"{name}" ({subject})'
    if description:
        text += f" (meaning: {' '.join(description.split()).rstrip('.')})"
    return text


def _answer_format(n: int, structured: bool, what: str) -> str:
    if structured:
        return (f'Answer with a JSON object of the form {{"items": [...]}} holding {n} {what}, '
                "each a short phrase.")
    return (f"Give {n} {what}, one per line, each line starting with \"- \". "
            "Write nothing else: no title, no numbering, no explanations.")


def _messages(user: str) -> tuple[dict[str, str], ...]:
    return ({"role": "system", "content": SYSTEM}, {"role": "user", "content": user})


def attributes_prompt(name: str, subject: str, n: int, *, description: str | None = None,
                      structured: bool = False) -> Prompt:
    """Visual features that help recognise the class in a photo (with a worked example)."""
    example_items = list(ATTRIBUTE_EXAMPLE)
    if structured:
        example = '{"items": [' + ", ".join(f'"{e}"' for e in example_items) + "]}"
    else:
        example = "\n".join(f"- {e}" for e in example_items)
    target = describe_class(name, subject, description)
    user = (
        f"Which visual features would let someone recognise {target} in a photo? Think of overall "
        "shape, colours, textures and patterns, distinctive parts, size and typical surroundings. "
        "Each feature should be something a camera can see.\n"
        f"{_answer_format(n, structured, 'features')}\n\n"
        f'For example, a good answer for "lemon, a type of fruit" would be:\n{example}\n\n'
        f"Now give the features of {target}."
    )
    return Prompt("attributes", _messages(user), _LIST_SCHEMA, "visual_features")


def analogous_prompt(name: str, subject: str, n: int, *, description: str | None = None,
                     exclude: Sequence[str] = (), structured: bool = False) -> Prompt:
    """Other things that look like the class (candidates for the analogous filter)."""
    avoid = f'Do not name "{name}" itself'
    if exclude:
        avoid += ", nor any of: " + "; ".join(exclude)
    user = (
        f"What other things look similar to {describe_class(name, subject, description)} in a photo, "
        "so that a person or a camera might mistake one for the other? They may be objects, "
        "animals, plants, foods, materials or places. Name each thing briefly (one to four words), "
        f"without describing it. {avoid}.\n"
        f"{_answer_format(n, structured, 'look-alikes')}"
    )
    return Prompt("analogous", _messages(user), _LIST_SCHEMA, "look_alikes")


def synonyms_prompt(name: str, subject: str, n: int, *, description: str | None = None,
                    structured: bool = False) -> Prompt:
    """Other names for exactly the same thing (not broader or related categories)."""
    none = ('an empty list {"items": []}' if structured else 'the single word "none"')
    user = (
        f"List other names people use for {describe_class(name, subject, description)}: common or "
        "regional names, alternative spellings, the scientific name if there is one. Only names for "
        "exactly the same thing, not broader categories, relatives or parts. "
        f"If there are no other names, answer with {none}.\n"
        f"{_answer_format(n, structured, 'names at most')}"
    )
    return Prompt("synonyms", _messages(user), _LIST_SCHEMA, "other_names")


def contrast_prompt(name_a: str, subject_a: str, name_b: str, subject_b: str, n: int, *,
                    description_a: str | None = None, description_b: str | None = None,
                    structured: bool = False) -> Prompt:
    """Visual differences between two confusable classes, as features of each side."""
    a = describe_class(name_a, subject_a, description_a)
    b = describe_class(name_b, subject_b, description_b)
    ask = (
        f"A photo shows either {a} or {b}. What are the key visual differences that tell them "
        f"apart? For each of the two, give {n} short features that it shows and the other one does "
        "not (each feature a short phrase). Describe only what that one itself looks like: do not "
        "mention the other one and do not compare (no \"instead of\", \"rather than\" or \"unlike\")."
    )
    if structured:
        fmt = (f'Answer with a JSON object {{"first": [...], "second": [...]}}: "first" holds the '
               f'features of "{name_a}", "second" those of "{name_b}".')
    else:
        fmt = ("Answer in exactly this layout and write nothing else:\n"
               f"{name_a}:\n- feature\n- feature\n{name_b}:\n- feature\n- feature")
    return Prompt("contrasts", _messages(f"{ask}\n{fmt}"), _PAIR_SCHEMA, "visual_differences")
