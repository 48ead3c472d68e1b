"""Executing tasks: asking with retries, reading answers, re-asking for look-alikes, in parallel.

Worker threads only talk to the model; the calling thread receives each finished task and hands it
to the journal, so journal writes never race. Threads are daemons and watch a stop event, so
Ctrl-C returns at once and abandons only unfinished requests.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from ..errors import LLMError
from ..names import normalize_name
from ..knowledge.templates import DomainTemplates
from .analogous import AnalogousFilter
from .classes import ClassSpec
from .config import GenerationConfig
from ..knowledge.lint import clean_contrast_feature
from .llm.base import (LLM, ChatRequest, CircuitOpen, FatalLLMError, MalformedReply, RequestAdapted,
                       TransientLLMError)
from .parsing import drop_cut_tail, finalize, is_sentence, parse_list, parse_pair
from .plan import Task, build_prompt
from .prompts import ATTRIBUTE_EXAMPLE, Prompt

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Temperature used when asking again after an unusable answer (a greedy model would repeat it).
RETRY_TEMPERATURE = 0.7


class Stopped(Exception):
    """The run is being stopped (interrupt or fatal error elsewhere)."""


@dataclasses.dataclass
class RunStats:
    """Counters shared by the worker threads."""

    requests: int = 0
    transient_failures: int = 0
    unusable_answers: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Requests in a row (over all workers) that could not connect; reset by any answer.
    connection_failures_in_a_row: int = 0
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for k, v in counts.items():
                setattr(self, k, getattr(self, k) + v)

    def connection_failed(self) -> int:
        with self._lock:
            self.connection_failures_in_a_row += 1
            return self.connection_failures_in_a_row

    def answered(self) -> None:
        with self._lock:
            self.connection_failures_in_a_row = 0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class TaskRunner:
    """Turns a :class:`Task` into a journal record by asking the model."""

    def __init__(self, llm: LLM, specs: Sequence[ClassSpec], domain: DomainTemplates,
                 config: GenerationConfig, analogous_filter: AnalogousFilter | None = None,
                 stop: threading.Event | None = None, stats: RunStats | None = None) -> None:
        self.llm = llm
        self.specs = list(specs)
        self.names = [s.name for s in specs]
        self.domain = domain
        self.config = config
        self.filter = analogous_filter or AnalogousFilter(self.names, domain)
        self.stop = stop or threading.Event()
        self.stats = stats or RunStats()

    # ------------------------------------------------------------------ asking
    def ask(self, build: Callable[[bool], Prompt], parse: Callable[[str], T | None],
            label: str) -> tuple[T, str]:
        """Ask until ``parse`` accepts an answer; returns (parsed, raw text).

        Transient failures wait (backoff, ``Retry-After``) and count against
        ``config.retry.max_retries``; unusable answers are asked again, warmer, up to
        ``config.max_bad_answers`` times. Raises :class:`LLMError` when both budgets are spent.
        """
        policy = self.config.retry
        transient = bad = 0
        while True:
            if self.stop.is_set():
                raise Stopped()
            prompt = build(self.llm.structured)
            temperature = self.config.temperature if bad == 0 else max(self.config.temperature,
                                                                        RETRY_TEMPERATURE)
            request = ChatRequest(prompt.messages, max_tokens=self.config.max_tokens,
                                  temperature=temperature, schema=prompt.schema,
                                  schema_name=prompt.schema_name)
            self.stats.add(requests=1)
            try:
                result = self.llm.chat(request)
            except FatalLLMError:
                raise
            except RequestAdapted as e:
                log.info("%s: %s", label, e)
                continue  # same question, asked the way the server accepts
            except MalformedReply as e:
                self.stats.answered()
                self.stats.add(unusable_answers=1)
                bad += 1
                if bad > self.config.max_bad_answers:
                    raise LLMError(f"no usable answer in {bad} tries ({e})") from None
                log.info("%s: %s; asking again", label, e)
                continue
            except TransientLLMError as e:
                self.stats.add(transient_failures=1)
                if e.connection:
                    in_a_row = self.stats.connection_failed()
                    if in_a_row >= self.config.max_connection_failures:
                        raise CircuitOpen(
                            f"stopped asking: {in_a_row} requests in a row could not connect ({e})"
                        ) from None
                if transient >= policy.max_retries:
                    raise LLMError(f"gave up after {transient + 1} attempts: {e}") from None
                wait = policy.delay(transient, e.retry_after)
                transient += 1
                log.info("%s: %s; retrying in %.1f s", label, e, wait)
                if self.stop.wait(wait):
                    raise Stopped() from None
                continue
            self.stats.answered()
            self.stats.add(prompt_tokens=result.prompt_tokens,
                           completion_tokens=result.completion_tokens)
            text = drop_cut_tail(result.text) if result.truncated else result.text
            parsed = parse(text)
            if parsed is not None:
                return parsed, result.text
            self.stats.add(unusable_answers=1)
            bad += 1
            shown = " ".join(result.text.split())[:120]
            if bad > self.config.max_bad_answers:
                raise LLMError(f"no usable answer in {bad} tries (last answer: {shown!r})")
            log.info("%s: unusable answer %r; asking again", label, shown)

    # ------------------------------------------------------------------ tasks
    def run(self, task: Task) -> dict[str, Any]:
        """Do one task; the record holds the items plus bookkeeping for the journal."""
        label = task.label(self.names)
        before = (self.stats.requests, self.stats.tokens)
        record: dict[str, Any] = {"key": task.key, "kind": task.kind,
                                  "classes": [self.names[i] for i in task.classes],
                                  "llm": self.llm.identity}
        if task.kind == "analogous":
            record.update(self._analogous(task, label))
        elif task.kind == "contrasts":
            record.update(self._contrasts(task, label))
        else:
            record.update(self._list(task, label))
        record["requests"] = self.stats.requests - before[0]
        return record

    def _list(self, task: Task, label: str) -> dict[str, Any]:
        i = task.classes[0]
        kind = task.kind
        if kind == "synonyms":
            limit, exclude, names_only = self.config.n_synonyms, self.names, True
        else:
            limit, names_only = self.config.n_attributes, False
            exclude = [self.names[i], *ATTRIBUTE_EXAMPLE]

        def parse(text: str) -> list[str] | None:
            items = parse_list(text, names_only=names_only)
            if items is None:
                return None
            if kind == "attributes" and len(items) == 1 and is_sentence(items[0]):
                return None  # one sentence instead of a list: ask again
            kept = finalize(items, limit=limit, exclude=exclude)
            if not kept and items and kind != "synonyms":
                return None  # everything was unusable (overlong, the name itself)
            return kept

        items, raw = self.ask(lambda s: build_prompt(kind, self.specs, task.classes, self.domain,
                                                     self.config, s), parse, label)
        return {"items": items, "answers": [raw]}

    def _analogous(self, task: Task, label: str) -> dict[str, Any]:
        i = task.classes[0]
        n = self.config.n_analogous
        kept: list[str] = []
        rejected: list[str] = []
        seen = {normalize_name(self.names[i])}
        answers = []
        for _round in range(1 + self.config.max_reasks):
            need = n - len(kept)
            exclude = kept + rejected

            def build(structured: bool, need: int = need, exclude: list[str] = exclude) -> Prompt:
                return build_prompt("analogous", self.specs, task.classes, self.domain, self.config,
                                    structured, n=need, exclude=exclude)

            items, raw = self.ask(build, lambda t: parse_list(t, names_only=True), label)
            answers.append(raw)
            fresh = [it for it in finalize(items, limit=4 * n, exclude=[self.names[i]], max_words=8)
                     if normalize_name(it) not in seen]
            seen.update(normalize_name(it) for it in fresh)
            if not fresh:
                break  # the model has nothing new to offer: stop early
            ok, bad = self.filter.split(i, fresh)
            kept += ok
            rejected += bad
            if len(kept) >= n:
                break
        return {"items": kept[:n], "rejected": rejected, "answers": answers}

    def _contrasts(self, task: Task, label: str) -> dict[str, Any]:
        i, j = task.classes
        n = self.config.n_contrast_features

        def parse(text: str) -> tuple[list[str], list[str]] | None:
            sides = parse_pair(text, self.names[i], self.names[j])
            if sides is None:
                return None
            # each side describes its own class: comparison tails ("instead of ...") are cut
            own_a = [c for c in (clean_contrast_feature(f, self.names[j]) for f in sides[0]) if c]
            own_b = [c for c in (clean_contrast_feature(f, self.names[i]) for f in sides[1]) if c]
            a = finalize(own_a, limit=n, exclude=[self.names[i], self.names[j]])
            b = finalize(own_b, limit=n, exclude=[self.names[i], self.names[j]])
            return (a, b) if (a or b) else None

        (a, b), raw = self.ask(lambda s: build_prompt("contrasts", self.specs, task.classes,
                                                      self.domain, self.config, s), parse, label)
        return {"first": a, "second": b, "answers": [raw]}


def run_parallel(fn: Callable[[Task], dict[str, Any]], tasks: Sequence[Task], workers: int,
                 stop: threading.Event,
                 stop_on: tuple[type[BaseException], ...] = (FatalLLMError, CircuitOpen),
                 ) -> Iterator[tuple[Task, dict[str, Any] | None, BaseException | None]]:
    """Run ``fn`` over ``tasks`` on ``workers`` daemon threads; yield ``(task, record, error)`` in
    completion order. Stops handing out tasks once ``stop`` is set, which an error of a
    ``stop_on`` type does at once."""
    todo: queue.Queue[Task] = queue.Queue()
    for t in tasks:
        todo.put(t)
    done: queue.Queue[tuple[Task, Any, BaseException | None]] = queue.Queue()

    def worker() -> None:
        while not stop.is_set():
            try:
                t = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((t, fn(t), None))
            except BaseException as e:  # noqa: BLE001 - handed to the caller
                if isinstance(e, stop_on):
                    stop.set()
                done.put((t, None, e))

    threads = [threading.Thread(target=worker, name=f"atg-worker-{k}", daemon=True)
               for k in range(max(1, min(workers, len(tasks))))]
    for th in threads:
        th.start()
    for _ in range(len(tasks)):
        while True:
            try:
                item = done.get(timeout=0.2)
                break
            except queue.Empty:
                if stop.is_set() and not any(th.is_alive() for th in threads) and done.empty():
                    return
        yield item
