"""The driver: class list + language model -> knowledge file, resumably.

:func:`generate_knowledge` is the one entry point (the ``coderclip generate`` command calls it).
It plans the questions (:func:`plan_generation`, all a dry run does), then asks the ones the
journal does not already hold, in parallel, journals each finished answer at once, and finally
assembles the knowledge file in label order and writes it atomically.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._version import __version__
from ..errors import ConfigError, Interrupted, KnowledgeError, LLMError
from ..knowledge import ClassKnowledge, Knowledge, load_knowledge, provenance_record
from ..names import dedupe, normalize_name
from ..knowledge.templates import DomainTemplates, get_domain
from .analogous import AnalogousFilter
from .assemble import apply_results
from .classes import ClassSpec, as_class_specs
from .config import GenerationConfig
from .journal import Journal, journal_path_for, read_journal
from .llm.base import LLM, CircuitOpen, FatalLLMError
from .llm import load_llm
from .pairs import nearest_pairs, pairs_from_names, read_pairs
from .plan import Task, build_prompt, plan_tasks
from .prompts import PROMPT_VERSION
from .runner import RunStats, Stopped, TaskRunner, run_parallel

if TYPE_CHECKING:
    import torch

    from ..encoders.base import Encoder

log = logging.getLogger(__name__)


@dataclasses.dataclass
class GenerationPlan:
    """Everything decided before the first question: classes, tasks, pairs, where results go."""

    specs: list[ClassSpec]
    domain: DomainTemplates
    config: GenerationConfig
    llm: LLM
    encoder: Encoder | None
    scope: list[int]
    pairs: list[tuple[int, int]]
    tasks: list[Task]
    base: Knowledge
    out: Path | None
    journal_path: Path | None
    regenerate: bool
    name_embeddings: torch.Tensor | None = None
    #: task keys already answered in the journal (at planning time)
    journaled: frozenset[str] = frozenset()

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def pending(self) -> list[Task]:
        return [t for t in self.tasks if self.regenerate or t.key not in self.journaled]

    def format(self) -> str:
        """Human-readable plan: calls per type, the worst case, and one prompt of each type."""
        cfg = self.config
        pending = self.pending
        lines = [f"dry run: nothing is sent and nothing is written",
                 f"classes: {len(self.specs)} ({len(self.scope)} selected), domain: {self.domain.name}, "
                 f"LLM: {self.llm.identity}"]
        if self.out:
            lines.append(f"output: {self.out}  journal: {self.journal_path}")
        lines.append("requests to send (answers already in the journal are not asked again):")
        width = max(len(k) for k in ("attributes", "analogous", "synonyms", "contrasts"))
        for kind in cfg.types:
            todo = [t for t in pending if t.kind == kind]
            done = len([t for t in self.tasks if t.kind == kind]) - len(todo)
            if kind == "synonyms" and cfg.synonyms_from == "wordnet":
                note = "WordNet, offline"
            elif kind == "analogous":
                note = (f"up to {len(todo) * cfg.max_reasks} more if look-alikes are rejected"
                        if cfg.max_reasks else "no re-asks")
            elif kind == "contrasts":
                how = ("from the pairs given" if cfg.pairs is not None
                       else f"{cfg.neighbours} nearest classes each")
                note = f"{len(self.pairs)} pair{'s' if len(self.pairs) != 1 else ''}, {how}"
            else:
                note = ""
            if kind == "synonyms" and cfg.synonyms_from == "both":
                note = "plus WordNet, offline"
            extra = f", {done} in journal" if done else ""
            lines.append(f"  {kind:<{width}} {len(todo):>6}{'  (' + note + extra + ')' if note or extra else ''}")
        n_reask = sum(1 for t in pending if t.kind == "analogous") * cfg.max_reasks
        lines.append(f"  {'total':<{width}} {len(pending):>6}  (at most {len(pending) + n_reask} "
                     f"plus retries: up to {cfg.retry.max_retries} per request for timeouts, 429 "
                     f"and 5xx, {cfg.max_bad_answers} for unusable answers)")
        for kind in cfg.llm_types:
            example = next((t for t in self.tasks if t.kind == kind), None)
            if example is None:
                continue
            prompt = build_prompt(kind, self.specs, example.classes, self.domain, cfg,
                                  self.llm.structured)
            lines.append("")
            lines.append(f"--- {kind} prompt ({example.label(self.names)}) ---")
            for m in prompt.messages:
                lines.append(f"[{m['role']}]")
                lines.append(m["content"])
        return "\n".join(lines)


@dataclasses.dataclass
class GenerationSummary:
    """What a run did."""

    classes: int
    classes_complete: int
    tasks: int
    reused: int
    asked: int
    failures: list[tuple[str, str]]
    stats: RunStats
    items: dict[str, int]
    rejected_analogous: int
    seconds: float
    out: Path | None
    journal: Path | None
    #: Tasks never asked because the run stopped early (the server stopped answering).
    not_asked: int = 0
    stop_reason: str | None = None

    @property
    def ok(self) -> bool:
        return not self.failures and not self.not_asked

    def format(self) -> str:
        s = self.stats
        where = f" -> {self.out}" if self.out else ""
        lines = [f"knowledge for {self.classes} classes ({self.classes_complete} complete){where}",
                 f"  tasks: {self.tasks} ({self.reused} answered from the journal, {self.asked} asked "
                 f"now, {len(self.failures)} failed) in {self.seconds:.1f} s",
                 f"  requests: {s.requests} ({s.transient_failures} transient failures retried or "
                 f"given up, {s.unusable_answers} unusable answers)",
                 f"  tokens: {s.prompt_tokens} prompt + {s.completion_tokens} completion"]
        items = ", ".join(f"{k} {v}" for k, v in self.items.items())
        if self.rejected_analogous:
            items += f" ({self.rejected_analogous} look-alikes rejected as too close to another class)"
        lines.append(f"  items: {items}")
        if self.not_asked:
            lines.append(f"  not asked: {self.not_asked} task(s); {self.stop_reason or 'the run stopped early'}")
        if self.failures:
            lines.append(f"  failures ({len(self.failures)}):")
            for label, reason in self.failures[:20]:
                lines.append(f"    {label} — {reason}")
            if len(self.failures) > 20:
                lines.append(f"    … and {len(self.failures) - 20} more")
            if self.asked == 0 and self.reused == 0:
                lines.append("  nothing succeeded: check that the model server is reachable (--base-url), "
                             "the model name and the API key")
        if self.failures or self.not_asked:
            lines.append("  run the same command again to retry the failed tasks; finished answers "
                         f"are kept{' in ' + str(self.journal) if self.journal else ''}")
        return "\n".join(lines)


@dataclasses.dataclass
class GenerationResult:
    """The knowledge (``None`` for a dry run), the plan it came from and the run's summary."""

    plan: GenerationPlan
    knowledge: Knowledge | None = None
    summary: GenerationSummary | None = None


# ---------------------------------------------------------------------- planning


def plan_generation(classes: str | os.PathLike | Iterable[str | ClassSpec | dict] | None,
                    llm: str | LLM, *, domain: str | None = None,
                    encoder: str | Encoder | None = None, out: str | os.PathLike | None = None,
                    config: GenerationConfig | None = None, only: Sequence[str] | None = None,
                    regenerate: bool = False, overwrite: bool = False,
                    journal: str | os.PathLike | None = None, name: str | None = None,
                    base: str | os.PathLike | Knowledge | None = None,
                    llm_options: dict[str, Any] | None = None) -> GenerationPlan:
    """Decide what a run would ask (no request is sent). Arguments as in :func:`generate_knowledge`."""
    config = config or GenerationConfig()
    out_path = Path(out) if out is not None else None
    if isinstance(base, Knowledge):
        existing, where = base, "the base knowledge"
    elif base is not None:
        existing, where = load_knowledge(base), f"base {str(base)!r}"
    else:
        existing, where = _existing_output(out_path, overwrite), f"{str(out_path)!r}"
    if classes is None:
        if existing is None:
            raise ConfigError("give the classes to describe (a class list), or a base knowledge file")
        specs = [ClassSpec(c.name, c.description) for c in existing.classes]
    else:
        specs = as_class_specs(classes)
    names = [s.name for s in specs]
    domain = domain or (existing.domain if existing is not None else "generic")
    templates = get_domain(domain)
    llm = load_llm(llm, **(llm_options or {}))
    journal_path = Path(journal) if journal is not None else (
        journal_path_for(out_path) if out_path is not None else None)
    scope = _scope(only, names)

    need_contrast_pairs = "contrasts" in config.llm_types
    if need_contrast_pairs and config.pairs is None and encoder is None:
        raise ConfigError("choosing contrast pairs automatically needs an encoder (--encoder SPEC, "
                          "e.g. the CLIP model you will classify with); or give the pairs in a "
                          "file (--pairs-file), or leave out the contrasts type")
    enc = _load_encoder(encoder)
    name_emb = None
    if enc is not None and ("analogous" in config.llm_types
                            or (need_contrast_pairs and config.pairs is None)):
        name_emb = enc.encode_texts([templates.name_prompt(n) for n in names])  # [C, D]
    pairs: list[tuple[int, int]] = []
    if need_contrast_pairs:
        if config.pairs is None:
            pairs = nearest_pairs(name_emb, config.neighbours)
        elif isinstance(config.pairs, (str, os.PathLike)):
            pairs = read_pairs(config.pairs, names)
        else:
            pairs = pairs_from_names(config.pairs, names)
        if only is not None:
            chosen = set(scope)
            pairs = [p for p in pairs if p[0] in chosen or p[1] in chosen]

    tasks = plan_tasks(specs, templates, config, llm.identity, scope=scope, pairs=pairs,
                       encoder_identity=getattr(enc, "identity", None))
    base_k = _base_knowledge(specs, templates.name, existing, where, name)
    journaled = frozenset(read_journal(journal_path)) if journal_path is not None else frozenset()
    return GenerationPlan(specs=specs, domain=templates, config=config, llm=llm, encoder=enc,
                          scope=scope, pairs=pairs, tasks=tasks, base=base_k, out=out_path,
                          journal_path=journal_path, regenerate=regenerate,
                          name_embeddings=name_emb, journaled=journaled)


def _scope(only: Sequence[str] | None, names: Sequence[str]) -> list[int]:
    if only is None:
        return list(range(len(names)))
    index = {normalize_name(n): i for i, n in enumerate(names)}
    picked = []
    for n in only:
        key = normalize_name(n)
        if key not in index:
            close = difflib.get_close_matches(n, list(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise KnowledgeError(f"--only names {n!r}, which is not in the class list{hint}")
        if index[key] not in picked:
            picked.append(index[key])
    return sorted(picked)


def _load_encoder(encoder: str | Encoder | None) -> Encoder | None:
    if encoder is None or not isinstance(encoder, str):
        return encoder
    from ..encoders import load_encoder

    return load_encoder(encoder)


def _existing_output(out: Path | None, overwrite: bool) -> Knowledge | None:
    """The output file as knowledge, if it exists and is to be updated rather than replaced."""
    if out is None or overwrite or not out.exists():
        return None
    try:
        return load_knowledge(out)
    except KnowledgeError as e:
        raise ConfigError(f"{str(out)!r} exists but is not a usable knowledge file ({e}); pass "
                          "--overwrite to replace it, or choose another --out") from None


def _base_knowledge(specs: Sequence[ClassSpec], domain: str, existing: Knowledge | None,
                    where: str, name: str | None) -> Knowledge:
    """``existing`` (to update in place) aligned to the class list, or an empty knowledge."""
    names = [s.name for s in specs]
    if existing is None:
        return Knowledge([ClassKnowledge(s.name, description=s.description) for s in specs],
                         domain=domain, name=name)
    hint = "pass --overwrite to start from scratch, or choose another --out"
    theirs = {normalize_name(n) for n in existing.class_names}
    ours = {normalize_name(n) for n in names}
    if theirs != ours:
        extra, missing = sorted(theirs - ours), sorted(ours - theirs)
        raise ConfigError(f"{where} describes other classes (only there: {extra[:3]}, only in the "
                          f"class list: {missing[:3]}); {hint}")
    if existing.domain != domain:
        raise ConfigError(f"{where} has domain {existing.domain!r}, not {domain!r}; {hint}")
    k = existing.align(names)
    for c, s in zip(k.classes, specs):
        if s.description:
            c.description = s.description
    if name:
        k.name = name
    return k


# ---------------------------------------------------------------------- running


def run_generation(plan: GenerationPlan, *, progress: bool = True) -> GenerationResult:
    """Ask what the journal lacks, then assemble and (if ``plan.out``) write the knowledge file."""
    started = time.monotonic()
    cfg = plan.config
    names = plan.names
    stats = RunStats()
    stop = threading.Event()
    failures: list[tuple[str, str]] = []
    failed_tasks: list[Task] = []

    wordnet_syns: dict[str, list[str]] | None = None
    if cfg.wordnet_synonyms:
        from .wordnet import wordnet_synonyms

        scoped = [names[i] for i in plan.scope]
        if plan.encoder is None:
            log.warning("synonyms come from WordNet's most frequent sense of each name, which can be "
                        "the wrong one (e.g. 'lime' -> 'calcium hydroxide'); pass --encoder with a "
                        "CLIP model to choose the sense that fits the class")
        wordnet_syns = wordnet_synonyms(scoped, encoder=plan.encoder, domain=plan.domain,
                                        limit=cfg.n_synonyms)

    yielded = 0
    answered: set[str] = set()   # keys of the tasks that finished or failed (not those never asked)
    stop_reason: str | None = None
    with Journal(plan.journal_path) as journal:
        pending = [t for t in plan.tasks if plan.regenerate or t.key not in journal]
        reused = len(plan.tasks) - len(pending)
        journaled_before = len(journal.records)
        if pending:
            plan.llm.prepare()
            flt = AnalogousFilter(names, plan.domain, plan.encoder, cfg.analogous_threshold,
                                  plan.name_embeddings)
            runner = TaskRunner(plan.llm, plan.specs, plan.domain, cfg, flt, stop, stats)
            workers = min(cfg.concurrency, plan.llm.max_concurrency or cfg.concurrency)
            bar = _progress_bar(len(pending), progress)
            try:
                for task, record, error in run_parallel(runner.run, pending, workers, stop):
                    yielded += 1
                    answered.add(task.key)
                    if isinstance(error, CircuitOpen) and stop_reason is None:
                        stop_reason = str(error)
                    if error is None:
                        journal.append(record)
                    elif isinstance(error, FatalLLMError):
                        raise error
                    elif isinstance(error, (LLMError, Stopped)):
                        failures.append((task.label(names), str(error)))
                        failed_tasks.append(task)
                    else:
                        raise error
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(failed=len(failures), requests=stats.requests,
                                        tokens=stats.tokens, refresh=False)
            except KeyboardInterrupt:
                kept = len(journal.records) - journaled_before
                raise Interrupted(
                    f"interrupted: {kept} answer(s) finished in this run are kept in the journal "
                    f"{str(plan.journal_path)!r} (no knowledge file was written); run the same "
                    "command again to continue" if plan.journal_path else
                    "interrupted: nothing was written (no journal without --out)") from None
            finally:
                stop.set()
                if bar is not None:
                    bar.close()
        records = {t.key: journal.get(t.key) for t in plan.tasks}
    not_asked = len(pending) - yielded
    succeeded = yielded - len(failures)
    if pending and succeeded == 0 and reused == 0:
        first = failures[0][1] if failures else "no task finished"
        unusable = all("usable answer" in reason for _, reason in failures)
        hint = ("the model's answers were unusable: try a stronger model or a larger --max-tokens"
                if failures and unusable else
                "check that the server is reachable (--base-url), the model name and the API key")
        raise LLMError(f"no question was answered ({len(failures)} failed, {not_asked} not asked; "
                       f"first failure: {first}); no knowledge file was written; {hint}, then run "
                       "the same command again")

    knowledge, items, rejected = _assemble(plan, records, wordnet_syns, failed_tasks)
    if plan.out is not None:
        knowledge.save(plan.out)
    failed_classes = {i for t in failed_tasks for i in t.classes} | {
        i for t in pending if t.key not in answered for i in t.classes}
    summary = GenerationSummary(
        classes=len(plan.specs), classes_complete=len([i for i in plan.scope if i not in failed_classes]),
        tasks=len(plan.tasks), reused=reused, asked=succeeded,
        failures=failures, not_asked=not_asked, stop_reason=stop_reason, stats=stats, items=items, rejected_analogous=rejected,
        seconds=time.monotonic() - started, out=plan.out, journal=plan.journal_path)
    return GenerationResult(plan=plan, knowledge=knowledge, summary=summary)


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="generating", unit="task", file=sys.stderr, dynamic_ncols=True)


def _created() -> str:
    """Provenance timestamp: now, or ``$SOURCE_DATE_EPOCH`` for reproducible files."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.fromtimestamp(int(epoch), timezone.utc) if epoch and epoch.isdigit()
            else datetime.now(timezone.utc))
    return when.replace(microsecond=0).isoformat()


def _assemble(plan: GenerationPlan, records: dict[str, dict[str, Any] | None],
              wordnet_syns: dict[str, list[str]] | None,
              failed_tasks: Sequence[Task]) -> tuple[Knowledge, dict[str, int], int]:
    cfg = plan.config
    names = plan.names
    lists: dict[str, dict[int, list[str]]] = {}
    contrasts: dict[tuple[int, int], tuple[list[str], list[str]]] = {}
    rejected = 0
    for t in plan.tasks:
        rec = records.get(t.key)
        if rec is None:
            continue
        if t.kind == "contrasts":
            contrasts[(t.classes[0], t.classes[1])] = (list(rec.get("first", [])),
                                                       list(rec.get("second", [])))
        else:
            lists.setdefault(t.kind, {})[t.classes[0]] = list(rec.get("items", []))
            rejected += len(rec.get("rejected", []))
    if wordnet_syns is not None:
        syn = lists.setdefault("synonyms", {})
        for i in plan.scope:
            syn[i] = dedupe([*wordnet_syns.get(names[i], []), *syn.get(i, [])])
    failed_pairs = [t.classes for t in failed_tasks if t.kind == "contrasts"]
    prov = _provenance(plan)
    knowledge = apply_results(plan.base, lists=lists, contrasts=contrasts,
                              contrast_scope=plan.scope if "contrasts" in cfg.llm_types else None,
                              failed_pairs=failed_pairs, provenance=prov)
    items = {k: sum(len(v) for v in lists.get(k, {}).values()) for k in ("synonyms", "attributes", "analogous")
             if k in cfg.types}
    if "contrasts" in cfg.types:
        items["contrast pairs"] = len(contrasts)
        items["contrast features"] = sum(len(a) + len(b) for a, b in contrasts.values())
    return knowledge, items, rejected


def _provenance(plan: GenerationPlan) -> list[dict[str, Any]]:
    cfg = plan.config
    created = _created()
    enc = getattr(plan.encoder, "identity", None)
    scope = None if len(plan.scope) == len(plan.specs) else [plan.names[i] for i in plan.scope]
    out = []
    llm_types = list(cfg.llm_types)
    if llm_types:
        settings: dict[str, Any] = {"temperature": cfg.temperature, "max_tokens": cfg.max_tokens}
        counts = {"attributes": cfg.n_attributes, "analogous": cfg.n_analogous,
                  "synonyms": cfg.n_synonyms, "contrasts": cfg.n_contrast_features}
        for t in llm_types:
            settings[f"max_{t}"] = counts[t]
        if "analogous" in llm_types:
            settings.update(analogous_threshold=cfg.analogous_threshold, max_reasks=cfg.max_reasks,
                            analogous_filter=enc or "exact class names only")
        if "contrasts" in llm_types:
            settings["contrast_pairs"] = (f"{cfg.neighbours} nearest by name prompt ({enc})"
                                          if cfg.pairs is None else "given")
        describe = {k: v for k, v in plan.llm.describe().items() if k != "llm"}
        rec = provenance_record(f"coderclip generate (coderclip {__version__})",
                                model=plan.llm.identity, prompt_version=PROMPT_VERSION,
                                types=llm_types, created=created, settings=settings, **describe)
        if scope is not None:
            rec["classes"] = scope
        out.append(rec)
    if cfg.wordnet_synonyms:
        from .wordnet import WORDNET_SOURCE

        rec = provenance_record(WORDNET_SOURCE, types=["synonyms"], created=created,
                                sense_choice=(f"definition closest to the name prompt ({enc})" if enc
                                              else "most frequent noun sense"))
        if scope is not None:
            rec["classes"] = scope
        out.append(rec)
    return out


# ---------------------------------------------------------------------- entry point


def generate_knowledge(classes: str | os.PathLike | Iterable[str | ClassSpec | dict] | None,
                       llm: str | LLM, *, domain: str | None = None,
                       encoder: str | Encoder | None = None, out: str | os.PathLike | None = None,
                       config: GenerationConfig | None = None, only: Sequence[str] | None = None,
                       regenerate: bool = False, overwrite: bool = False,
                       journal: str | os.PathLike | None = None, name: str | None = None,
                       base: str | os.PathLike | Knowledge | None = None,
                       dry_run: bool = False, progress: bool = False,
                       llm_options: dict[str, Any] | None = None) -> GenerationResult:
    """Generate class knowledge with a language model.

    ``classes``: a class-list file, a shipped dataset name, or names / ``ClassSpec``s / dicts;
    ``None`` takes them from ``base``. ``domain``: prompt domain (default: that of ``base`` or of
    an existing ``out``, else ``"generic"``). ``base``: knowledge (file, pack name or object) to
    start from instead of an existing ``out``.
    ``llm``: a spec (``"openai:gpt-4o-mini"``, ``"ollama:llama3.1"``, ``"local:smollm2"``) or an
    :class:`~coderclip.atg.llm.LLM`; ``llm_options`` go to :func:`~coderclip.atg.llm.load_llm`.
    ``encoder``: spec or :class:`~coderclip.encoders.base.Encoder` for the look-alike filter, the
    WordNet sense choice and automatic contrast pairs. ``out``: the knowledge file; if it exists
    with the same classes it is updated in place (only generated items are replaced) unless
    ``overwrite``. ``only``: restrict to these classes; ``regenerate``: ask again even where the
    journal (``journal``, default ``<out>.journal.jsonl``) has an answer.

    Returns a :class:`GenerationResult`; failed tasks are listed in its summary (the file is still
    written with everything else) and are retried by running again.
    """
    plan = plan_generation(classes, llm, domain=domain, encoder=encoder, out=out, config=config,
                           only=only, regenerate=regenerate, overwrite=overwrite, journal=journal,
                           name=name, base=base, llm_options=llm_options)
    if dry_run:
        return GenerationResult(plan=plan)
    try:
        return run_generation(plan, progress=progress)
    finally:
        if not isinstance(llm, LLM):  # made here from a spec: release it; a caller's LLM stays open
            plan.llm.close()
