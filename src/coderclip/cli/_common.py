"""Options and helpers shared by several subcommands (kept free of heavy imports)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MODEL_HELP = ("model spec: open_clip:ARCH:PRETRAINED (e.g. open_clip:ViT-B-32:openai, "
              "open_clip:ViT-L-14:/path/ckpt.pt, open_clip:local-dir:/path/folder, "
              "open_clip:hf-hub:ORG/REPO), hf:HUB_ID_OR_FOLDER, or testbed")


def add_model_args(p: argparse.ArgumentParser, required: bool = True, features: bool = False) -> None:
    """Model, device, batching and cache options (``features``: the command caches image
    features too)."""
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", required=required, help=MODEL_HELP)
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    g.add_argument("--precision", default=None, choices=["fp32", "fp16", "bf16"],
                   help="default: fp16 on GPU, fp32 on CPU")
    g.add_argument("--batch-size", type=positive_int, default=64, help="images per batch (default 64)")
    g.add_argument("--workers", type=non_negative_int, default=None,
                   help="image decoding processes (default: up to 4)")
    g.add_argument("--no-cache", action="store_true",
                   help="do not read or write the text-embedding and image-feature caches in "
                        "$CODERCLIP_CACHE (the latter let a killed run resume)" if features else
                        "do not read or write the text-embedding cache ($CODERCLIP_CACHE)")


def add_decode_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--decode", choices=["cpu", "device"], default="cpu",
                   help="where JPEG files are decoded and preprocessed: in the worker processes "
                        "(cpu, default) or on the model's device (device: nvJPEG on a GPU)")


def add_knowledge_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("classes and knowledge")
    g.add_argument("--knowledge", "-k", default=None,
                   help="knowledge file (JSON) or the name of a shipped pack (e.g. food101)")
    g.add_argument("--classes", default=None,
                   help="class list file (one name per line) when there is no knowledge file: "
                        "CODER then reduces to CLIP with the name prompt")
    g.add_argument("--domain", default=None,
                   help="prompt domain for --classes (generic, food, pet, flower, bird, aircraft, "
                        "car, texture, satellite, action, places)")


def add_templates_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--templates", default=None, metavar="FILE",
                   help="your own prompt templates: a text file with one template per line, "
                        "{c} standing for the class (the CLIP template ensemble), or a JSON "
                        "object per text type (see 'coderclip templates list --format json')")


def add_rerank_args(p: argparse.ArgumentParser) -> None:
    from ..defaults import DEFAULT_TAU, DEFAULT_TOP_K

    g = p.add_argument_group("rerank")
    g.add_argument("--rerank-k", type=positive_int, default=DEFAULT_TOP_K,
                   help=f"candidates the one-vs-one rerank considers (default {DEFAULT_TOP_K})")
    g.add_argument("--tau", type=unit_interval, default=DEFAULT_TAU,
                   help=f"rerank samples whose p(top1) - p(top2) < tau (default {DEFAULT_TAU})")


def add_methods_arg(p: argparse.ArgumentParser) -> None:
    from ..defaults import DEFAULT_METHODS, ZERO_SHOT_METHODS

    p.add_argument("--methods", nargs="+", choices=ZERO_SHOT_METHODS, default=None, metavar="METHOD",
                   help=f"methods to report, of {', '.join(ZERO_SHOT_METHODS)} (default: "
                        f"{' '.join(DEFAULT_METHODS)}); CODER + rerank and the ablation are always "
                        "included")


def load_model(args):
    from ..encoders import load_encoder

    return load_encoder(args.model, device=args.device, precision=args.precision)


def load_knowledge_from_args(args, class_names=None):
    """The knowledge from --knowledge, or names-only knowledge from --classes or ``class_names``."""
    from ..errors import ConfigError, KnowledgeError
    from ..knowledge import Knowledge, load_knowledge

    if args.knowledge:
        kn = load_knowledge(args.knowledge)
        if args.domain and args.domain != kn.domain:
            import dataclasses

            kn = dataclasses.replace(kn, domain=args.domain)  # re-validated on construction
        return kn
    if args.classes:
        names = read_class_list(args.classes)
    elif class_names is not None:
        names = list(class_names)
    else:
        raise ConfigError("give --knowledge FILE_OR_PACK or --classes FILE")
    try:
        return Knowledge.from_class_names(names, domain=args.domain or "generic")
    except KnowledgeError as e:
        where = f"class list {args.classes!r}" if args.classes else "the class names of the data"
        raise KnowledgeError(f"{where}: {e}") from None


def read_class_list(path: str) -> list[str]:
    from ..errors import InputError

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"class list {path!r} does not exist") from None
    except IsADirectoryError:
        raise InputError(f"class list {path!r} is a folder; give a file with one class name per "
                         "line") from None
    except OSError as e:
        raise InputError(f"cannot read class list {path!r}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise InputError(f"class list {path!r} is not UTF-8; save it as UTF-8") from None
    names = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not names:
        raise InputError(f"class list {path!r} is empty")
    return names


def write_json(data, path: str | None) -> None:
    from ..outputs import write_text

    write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", path)


# ---------------------------------------------------------------------- checked numbers
def _number(kind, lo=None, hi=None, lo_open=False):
    """An argparse ``type`` that parses ``kind`` and checks it lies within [lo, hi] (or (lo, hi])."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is float and value != value:
            raise argparse.ArgumentTypeError("NaN is not a valid value")
        if lo is not None and (value <= lo if lo_open else value < lo):
            raise argparse.ArgumentTypeError(f"must be {'greater than' if lo_open else 'at least'} {lo}, got {text}")
        if hi is not None and value > hi:
            raise argparse.ArgumentTypeError(f"must be at most {hi}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


#: Integers >= 1 (counts, sizes), integers >= 0, fractions in [0, 1], positive seconds.
positive_int = _number(int, 1)
non_negative_int = _number(int, 0)
unit_interval = _number(float, 0.0, 1.0)
positive_float = _number(float, 0.0, lo_open=True)
non_negative_float = _number(float, 0.0)
cosine = _number(float, -1.0, 1.0)
