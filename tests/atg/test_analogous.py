"""The look-alike filter and its bounded re-ask loop, with scripted answers."""

from __future__ import annotations

import collections

import pytest

from coderclip.atg import GenerationConfig, generate_knowledge
from coderclip.atg.analogous import AnalogousFilter
from coderclip.atg.llm.base import LLM, ChatResult
from coderclip.knowledge.templates import DOMAINS

FOOD = DOMAINS["food"]


class ScriptedLLM(LLM):
    """Answers look-alike questions from a per-class script, one answer per question."""

    identity = "scripted-test-llm"
    max_concurrency = 1

    def __init__(self, script: dict[str, list[str]]):
        self.script = {k: collections.deque(v) for k, v in script.items()}
        self.questions: dict[str, list[str]] = collections.defaultdict(list)

    def chat(self, request):
        user = request.messages[-1]["content"]
        cls = next(c for c in self.script if f'"{c}, a type of food"' in user)
        self.questions[cls].append(user)
        queue = self.script[cls]
        return ChatResult(queue.popleft() if queue else "- nothing new")


CLASSES = ["hamburger", "hot dog", "sandwich"]


def _run(llm, encoder=None, **cfg):
    config = GenerationConfig(types=("analogous",), n_analogous=4, **cfg)
    return generate_knowledge(CLASSES, llm, domain="food", encoder=encoder, config=config)


def test_rejected_look_alikes_are_replaced_within_the_reask_budget(keyword_encoder):
    enc = keyword_encoder({"burger": "hamburger", "cheeseburger": "hamburger"})
    llm = ScriptedLLM({
        "hot dog": ["- burger\n- sausage roll\n- Hamburger\n- corn dog",
                    "- bratwurst\n- corn dog\n- cheeseburger",
                    "- kielbasa\n- lobster roll",
                    "- never asked"],
        "hamburger": ["- cheeseburger\n- veggie burger\n- slider\n- patty melt"],
        "sandwich": ["- hot dog\n- wrap\n- sub\n- panini\n- toast"],
    })
    r = _run(llm, enc, max_reasks=2)
    k = r.knowledge
    # "burger" and "cheeseburger" are hamburgers to this encoder; "Hamburger" and "hot dog" are classes
    assert k["hot dog"].analogous == ["sausage roll", "corn dog", "bratwurst", "kielbasa"]
    assert k["hamburger"].analogous == ["cheeseburger", "veggie burger", "slider", "patty melt"]
    assert k["sandwich"].analogous == ["wrap", "sub", "panini", "toast"]
    assert len(llm.questions["hot dog"]) == 3  # one question and two re-asks, never more
    second = llm.questions["hot dog"][1]
    assert "burger" in second and "sausage roll" in second and "Give 2 look-alikes" in second
    assert r.summary.rejected_analogous == 4


def test_the_loop_stops_early_when_nothing_new_comes(keyword_encoder):
    enc = keyword_encoder({"burger": "hamburger"})
    same = "- burger\n- corn dog"
    llm = ScriptedLLM({"hot dog": [same] * 10, "hamburger": ["- slider"] * 10, "sandwich": ["- wrap"] * 10})
    r = _run(llm, enc, max_reasks=6)
    assert r.knowledge["hot dog"].analogous == ["corn dog"]
    assert len(llm.questions["hot dog"]) == 2


def test_without_an_encoder_only_class_names_are_rejected():
    llm = ScriptedLLM({"hot dog": ["- burger\n- hamburger\n- corn dog"], "hamburger": ["- slider"],
                       "sandwich": ["- wrap"]})
    r = _run(llm, None, max_reasks=0)
    assert r.knowledge["hot dog"].analogous == ["burger", "corn dog"]


@pytest.mark.parametrize("threshold, kept_expected, rejected_expected", [
    (1.0, ["burger", "corn dog"], ["sandwich"]),
    (-1.0, [], ["burger", "sandwich", "corn dog"]),
])
def test_threshold_bounds_with_a_real_encoder(open_clip_encoder, threshold, kept_expected,
                                              rejected_expected):
    flt = AnalogousFilter(CLASSES, FOOD, open_clip_encoder, threshold=threshold)
    kept, rejected = flt.split(CLASSES.index("hot dog"), ["burger", "sandwich", "corn dog"])
    assert (kept, rejected) == (kept_expected, rejected_expected)
