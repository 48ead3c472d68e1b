"""Shared pieces of the benchmark scripts: synthetic text banks and images, timing, tables, JSON.

Benchmarks are plain scripts (not tests): fixed seeds, warm-up runs, the median of several
repeats, printed as tables. Run them from the repository root with ``PYTHONPATH=src``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(1, str(ROOT))  # tests.reference: the loop scorer used as the speed baseline

from coderclip.bank.textbank import TEXT_TYPES, TextBank  # noqa: E402

_T = {t: i for i, t in enumerate(TEXT_TYPES)}


# ---------------------------------------------------------------------- synthetic data
@dataclasses.dataclass
class SyntheticSpec:
    """Shape of a synthetic text bank; the defaults give about 15 general texts per class
    (1 name, 0-3 synonyms, 5-9 attributes, 3-7 analogous) and 4 one-vs-one texts (2 features
    x 2 templates) for each of 5 neighbours per class, in both directions.

    Classes come in clusters of ``neighbours + 1`` similar classes; each class's one-vs-one
    neighbours are the other members of its cluster, so an image's top-5 candidates usually do
    have one-vs-one texts between them (as for real confusable classes).
    """

    n_classes: int
    dim: int = 512
    synonyms: tuple[int, int] = (0, 3)
    attributes: tuple[int, int] = (5, 9)
    analogous: tuple[int, int] = (3, 7)
    neighbours: int = 5
    ovo_per_pair: int = 4
    class_spread: float = 0.8   # class centre = cluster centre + spread x random direction
    text_noise: float = 0.7     # text = class centre + noise x random direction
    image_noise: float = 1.0    # image = class centre + noise x random direction


def _unit(t: torch.Tensor) -> torch.Tensor:
    return t / t.norm(dim=-1, keepdim=True)


def _noise(n: int, dim: int, g: torch.Generator) -> torch.Tensor:
    return _unit(torch.randn(n, dim, generator=g))


def synthetic_centres(spec: SyntheticSpec, seed: int = 0) -> torch.Tensor:
    """Unit class centres ``[C, D]`` with the cluster structure of :class:`SyntheticSpec`."""
    g = torch.Generator().manual_seed(seed)
    size = spec.neighbours + 1
    n_clusters = (spec.n_classes + size - 1) // size
    clusters = _noise(n_clusters, spec.dim, g)
    cluster_of = torch.arange(spec.n_classes) // size
    return _unit(clusters[cluster_of] + spec.class_spread * _noise(spec.n_classes, spec.dim, g))


def synthetic_bank(spec: SyntheticSpec, seed: int = 0) -> TextBank:
    """A :class:`TextBank` with random (but class-structured) unit embeddings; no text encoder."""
    C, D = spec.n_classes, spec.dim
    g = torch.Generator().manual_seed(seed + 1)
    centres = synthetic_centres(spec, seed)

    def counts(lo_hi: tuple[int, int]) -> torch.Tensor:
        return torch.randint(lo_hi[0], lo_hi[1] + 1, (C,), generator=g)

    parts_class, parts_type = [torch.arange(C)], [torch.full((C,), _T["name"])]
    for kind, span in (("synonym", spec.synonyms), ("attribute", spec.attributes),
                       ("analogous", spec.analogous)):
        n = counts(span)
        parts_class.append(torch.repeat_interleave(torch.arange(C), n))
        parts_type.append(torch.full((int(n.sum()),), _T[kind]))
    gen_class = torch.cat(parts_class)
    gen_type = torch.cat(parts_type)
    order = torch.argsort(gen_class * len(TEXT_TYPES) + gen_type, stable=True)  # class-major
    gen_class, gen_type = gen_class[order], gen_type[order]
    gen_other = torch.full_like(gen_class, -1)

    size = spec.neighbours + 1
    cls = torch.arange(C)
    first = (cls // size) * size
    members = first[:, None] + torch.arange(size)[None, :]                      # [C, size]
    ok = (members < C) & (members != cls[:, None])
    pair_c = cls[:, None].expand(-1, size)[ok]
    pair_o = members[ok]
    ovo_class = torch.repeat_interleave(pair_c, spec.ovo_per_pair)
    ovo_other = torch.repeat_interleave(pair_o, spec.ovo_per_pair)

    ec = torch.cat([gen_class, ovo_class])
    et = torch.cat([gen_type, torch.full_like(ovo_class, _T["contrast"])])
    eo = torch.cat([gen_other, ovo_other])
    n = ec.numel()
    emb = torch.empty(n, D)
    step = 1 << 16
    for s in range(0, n, step):  # bounded temporary memory for the 21k-class banks
        e = slice(s, s + step)
        emb[e] = _unit(centres[ec[e]] + spec.text_noise * _noise(ec[e].numel(), D, g))
    texts = [f"t{i}" for i in range(n)]
    return TextBank(class_names=[f"class {c}" for c in range(C)], texts=texts, embeddings=emb,
                    entry_row=torch.arange(n), entry_class=ec, entry_type=et, entry_other=eo,
                    encoder_identity="synthetic", domain="generic", knowledge_digest=f"synthetic-{C}-{seed}")


def synthetic_images(spec: SyntheticSpec, n: int, seed: int = 0, image_seed: int = 7
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit image embeddings ``[n, D]`` near the centre of a random class, and those labels."""
    centres = synthetic_centres(spec, seed)
    g = torch.Generator().manual_seed(image_seed)
    labels = torch.randint(0, spec.n_classes, (n,), generator=g)
    return _unit(centres[labels] + spec.image_noise * _noise(n, spec.dim, g)), labels


# ---------------------------------------------------------------------- timing
@dataclasses.dataclass
class Timing:
    """Wall-clock seconds of repeated runs: median, and the spread as a fraction of it."""

    runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> float:
        """(max - min) / median over the repeats: how noisy the measurement was."""
        return (max(self.runs) - min(self.runs)) / self.median if self.median > 0 else 0.0

    def as_dict(self, per: int = 1) -> dict:
        return {"median_s": self.median / per, "min_s": min(self.runs) / per,
                "max_s": max(self.runs) / per, "spread": self.spread, "repeats": len(self.runs),
                "per": per}


def measure(fn: Callable[[], object], repeats: int = 5, warmup: int = 1,
            sync: Callable[[], None] | None = None) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed (``sync`` after each run,
    e.g. ``torch.cuda.synchronize``)."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        runs.append(time.perf_counter() - t0)
    return Timing(runs)


# ---------------------------------------------------------------------- reporting
def fmt_time(seconds: float) -> str:
    """Seconds in the most readable unit."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A Markdown table (pasteable into docs/performance.md)."""
    print(f"\n### {title}\n")
    cells = [[str(c) for c in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(cells[0]))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in cells[1:]:
        print(line(r))
    sys.stdout.flush()


def machine() -> dict:
    """What the numbers were measured on."""
    cpu = platform.processor() or platform.machine()
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=5).stdout
        info = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        cpu = info.get("Model name", cpu).strip()
    except Exception:
        pass
    return {"date": datetime.now(timezone.utc).replace(microsecond=0).isoformat(), "cpu": cpu,
            "logical_cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])}


def write_json(path: str | None, payload: dict) -> None:
    if not path:
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(f"\nwrote {path}")


# ---------------------------------------------------------------------- an ImageNet-sized knowledge
def imagenet_sized_knowledge(n_classes: int = 1000, synonyms: int = 1, attributes: int = 8,
                             analogous: int = 5, contrast_features: int = 2):
    """Knowledge for ``n_classes`` classes with realistic wording and text lengths: ImageNet class
    names (from open_clip when it is installed) and attribute / analogous / contrast phrases
    recycled from the shipped knowledge packs. About 21 texts per class with the defaults
    (1 name, 1 synonym, 8 attributes, 5 analogous, 1 contrast partner x 2 features x 3 templates).
    """
    import itertools

    from coderclip.knowledge import ClassKnowledge, Knowledge
    from coderclip.knowledge import load_pack

    try:
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES as names
    except ImportError:
        names = ()
    base = list(dict.fromkeys(names)) or [f"object {i}" for i in range(n_classes)]
    class_names = [base[i % len(base)] + (f" {i // len(base) + 1}" if i >= len(base) else "")
                   for i in range(n_classes)]
    atts, anas, feats = [], [], []
    for pack in ("cifar100", "food101", "cub200", "caltech101"):
        for c in load_pack(pack).classes:
            atts.extend(c.attributes)
            anas.extend(c.analogous)
            for f in c.contrasts.values():
                feats.extend(f)
    att_it, ana_it, feat_it = itertools.cycle(atts), itertools.cycle(anas), itertools.cycle(feats)
    classes = []
    for i, n in enumerate(class_names):
        classes.append(ClassKnowledge(
            n, synonyms=[f"{n} variety {j + 1}" for j in range(synonyms)],
            attributes=[next(att_it) for _ in range(attributes)],
            analogous=[next(ana_it) for _ in range(analogous)],
            contrasts={class_names[(i + 1) % n_classes]: [next(feat_it) for _ in range(contrast_features)]}))
    return Knowledge(classes, domain="generic", name=f"imagenet-sized-{n_classes}")


class RandomTextEncoder:
    """A stand-in text encoder: a fixed random unit vector per text (seeded by the text), so a real
    text bank can be built without a model. Image embeddings come from elsewhere."""

    def __init__(self, dim: int = 512, identity: str = "random-text-encoder"):
        self.embed_dim, self.identity, self.name = dim, f"{identity}-{dim}", identity
        self.device, self.dtype = torch.device("cpu"), torch.float32

    def encode_texts(self, texts, batch_size: int = 256, show_progress_bar: bool = False) -> torch.Tensor:
        import zlib

        out = torch.empty(len(texts), self.embed_dim)
        for i, t in enumerate(texts):
            g = torch.Generator().manual_seed(zlib.crc32(t.encode()))
            out[i] = torch.randn(self.embed_dim, generator=g)
        return out / out.norm(dim=1, keepdim=True)


class PeakRSS:
    """Peak resident memory of this process while inside the ``with`` block, in bytes.

    Resets the kernel's high-water mark (``/proc/self/clear_refs``) on entry where allowed;
    otherwise samples the resident size every few milliseconds from a thread.
    """

    def __init__(self, interval: float = 0.002):
        self.interval, self.peak, self.start, self.method = interval, 0, 0, ""

    @staticmethod
    def current() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @staticmethod
    def _hwm() -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise OSError("no VmHWM")

    def __enter__(self) -> PeakRSS:
        import threading

        self.start = self.current()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            if self._hwm() > self.start * 1.05 + (16 << 20):
                raise OSError("high-water mark not reset")
            self.method = "VmHWM (reset via clear_refs)"
            self._thread = None
        except OSError:
            self.method = f"sampled every {self.interval * 1e3:.0f} ms"
            self._stop = threading.Event()
            self.peak = self.start

            def poll():
                while not self._stop.is_set():
                    self.peak = max(self.peak, self.current())
                    time.sleep(self.interval)

            self._thread = threading.Thread(target=poll, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None:
            self.peak = max(self._hwm(), self.current())
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, self.current())
