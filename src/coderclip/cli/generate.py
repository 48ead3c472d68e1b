"""``coderclip generate``: class list + language model -> knowledge file (the ATG)."""

from __future__ import annotations

import argparse
import sys

from . import example_formatter
from ._common import cosine, non_negative_float, non_negative_int, positive_float, positive_int

EXAMPLES = """\
examples:
  # OpenAI (key from $OPENAI_API_KEY), WordNet synonyms, CLIP for the look-alike filter and pairs
  coderclip generate --classes classes.txt --domain food --llm openai:gpt-4o-mini \\
      --encoder open_clip:ViT-B-32:openai --out food.json

  # a local server: Ollama, vLLM, llama.cpp, LM Studio (or any --base-url)
  coderclip generate --classes classes.txt --llm ollama:llama3.1 --encoder open_clip:ViT-B-32:openai --out k.json
  coderclip generate --classes classes.txt --llm vllm:Qwen/Qwen2.5-7B-Instruct --base-url http://gpu:8000/v1 ...

  # a local model folder or GGUF file through transformers (CPU or GPU)
  coderclip generate --classes classes.txt --llm local:/models/Qwen2.5-1.5B-Instruct --out k.json ...

  # what would be asked, and how many calls, without asking
  coderclip generate --classes imagenet.txt --llm openai:gpt-4o-mini --encoder ... --out k.json --dry-run

  # your own copy of a shipped pack with contrasts from your model
  coderclip generate --base food101 --types contrasts --llm vllm:Qwen/Qwen2.5-72B-Instruct \
      --encoder open_clip:ViT-B-32:openai --out my_food101.json

  # redo one class's attributes in an existing file, leaving everything else alone
  coderclip generate --classes classes.txt --llm openai:gpt-4o --out k.json --types attributes \\
      --only "hot dog" --regenerate --temperature 0.7

An interrupted run (Ctrl-C, crash, lost network) resumes where it stopped: run the same command
again. Finished answers are kept in OUT.journal.jsonl next to the output.
"""


def add_parser(sub) -> None:
    p = sub.add_parser(
        "generate", help="generate class knowledge with a language model (ATG)",
        description="Ask a language model, class by class, for visual attributes, look-alikes, "
                    "synonyms and one-vs-one differences, and write them as a knowledge file.",
        epilog=EXAMPLES, formatter_class=example_formatter)
    p.add_argument("--classes", default=None,
                   help="class list: a text file (one name per line), a CSV/TSV or JSON file with "
                        "names and optional descriptions, or a shipped dataset name (e.g. food101); "
                        "default: the classes of --base")
    p.add_argument("--llm", required=True,
                   help="language model: openai:MODEL, ollama:MODEL, vllm:MODEL, llamacpp:MODEL, "
                        "lmstudio:MODEL, or local:PATH (a model folder, a .gguf file; local:smollm2 "
                        "is a tiny test model)")
    p.add_argument("-o", "--output", "--out", dest="out", required=True,
                   help="knowledge file to write; if it exists with the same classes, only the "
                        "generated items are replaced")
    p.add_argument("--base", default=None, metavar="FILE_OR_PACK",
                   help="start from this knowledge file or shipped pack instead of an existing "
                        "--out (e.g. regenerate one type of a pack into your own file)")
    p.add_argument("--domain", default=None,
                   help="prompt domain: generic, food, pet, flower, bird, aircraft, car, texture, "
                        "satellite, action, places (default: that of --base or of an existing "
                        "--out, else generic)")
    p.add_argument("--name", default=None, help="name stored in the knowledge file")
    p.add_argument("--encoder", default=None,
                   help="CLIP model spec for the look-alike filter, WordNet sense choice and "
                        "automatic contrast pairs (e.g. open_clip:ViT-B-32:openai)")
    p.add_argument("--device", default=None, help="device for the encoder and a local LLM (cuda, mps, cpu)")

    g = p.add_argument_group("what to generate")
    g.add_argument("--types", default="synonyms,attributes,analogous,contrasts",
                   help="comma-separated knowledge types (default: all four)")
    g.add_argument("--synonyms-from", choices=["wordnet", "llm", "both"], default="wordnet",
                   help="synonyms from WordNet (offline, default), the LLM, or both")
    g.add_argument("--attributes", type=positive_int, default=8, metavar="N", help="attributes per class (8)")
    g.add_argument("--analogous", type=positive_int, default=5, metavar="N", help="look-alikes per class (5)")
    g.add_argument("--synonyms", type=positive_int, default=5, metavar="N", help="synonyms per class, at most (5)")
    g.add_argument("--contrast-features", type=positive_int, default=3, metavar="N",
                   help="features per side of a contrast pair (3)")
    g.add_argument("--neighbours", type=positive_int, default=3, metavar="M",
                   help="contrast each class with its M nearest classes by name prompt (3)")
    g.add_argument("--pairs-file", default=None,
                   help="contrast exactly these pairs (lines 'a,b' or 'a<TAB>b', or JSON [[a, b], ...])")
    g.add_argument("--analogous-threshold", type=cosine, default=0.9,
                   help="reject a look-alike whose name prompt has cosine above this with another "
                        "class's name prompt (0.9)")
    g.add_argument("--max-reasks", type=non_negative_int, default=2,
                   help="extra questions for replacements of rejected look-alikes (2)")
    g.add_argument("--only", action="append", default=None, metavar="CLASS",
                   help="generate for this class only (repeatable); others are left untouched")
    g.add_argument("--regenerate", action="store_true",
                   help="ask again even where the journal already holds an answer")
    g.add_argument("--overwrite", action="store_true",
                   help="replace an existing --out file instead of updating it")
    g.add_argument("--journal", default=None, help="journal file (default: OUT.journal.jsonl)")

    c = p.add_argument_group("language model connection")
    c.add_argument("--base-url", default=None, help="OpenAI-compatible server root, e.g. http://host:8000/v1")
    c.add_argument("--api-key-env", default=None,
                   help="environment variable holding the API key (default OPENAI_API_KEY for "
                        "openai:; keys are never read from the command line)")
    c.add_argument("--structured", choices=["auto", "on", "off"], default="auto",
                   help="ask for JSON-schema output (auto: if the server accepts it)")
    c.add_argument("--temperature", type=non_negative_float, default=0.0, help="sampling temperature (0)")
    c.add_argument("--max-tokens", type=positive_int, default=400, help="answer length limit in tokens (400)")
    c.add_argument("--timeout", type=positive_float, default=60.0, help="seconds per request (60)")
    c.add_argument("--max-retries", type=non_negative_int, default=5,
                   help="retries per request after timeouts, 429 and 5xx (5)")
    c.add_argument("--concurrency", type=positive_int, default=4, help="requests in flight at once (4)")

    p.add_argument("--dry-run", action="store_true",
                   help="print the prompts and the number of calls; ask and write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..atg import GenerationConfig, RetryPolicy, generate_knowledge
    from ..errors import ConfigError

    if args.classes is None and args.base is None:
        raise ConfigError("give --classes (a class list) or --base (a knowledge file or pack)")
    if not args.dry_run:
        from ..outputs import check_output_file

        check_output_file(args.out, "--out")
    types = tuple(t.strip() for t in args.types.split(",") if t.strip())
    if args.max_retries < 0:
        raise ConfigError(f"--max-retries must be 0 or more, got {args.max_retries}")
    config = GenerationConfig(
        types=types, synonyms_from=args.synonyms_from, n_attributes=args.attributes,
        n_analogous=args.analogous, n_synonyms=args.synonyms,
        n_contrast_features=args.contrast_features, neighbours=args.neighbours,
        pairs=args.pairs_file, analogous_threshold=args.analogous_threshold,
        max_reasks=args.max_reasks, temperature=args.temperature, max_tokens=args.max_tokens,
        concurrency=args.concurrency, retry=RetryPolicy(max_retries=args.max_retries))
    encoder = None
    if args.encoder:
        from ..atg.classes import as_class_specs
        from ..encoders import load_encoder

        if args.classes is not None:
            as_class_specs(args.classes)   # a bad class list is reported before the encoder loads

        encoder = load_encoder(args.encoder, device=args.device)
    llm_options = {"base_url": args.base_url, "api_key_env": args.api_key_env,
                   "timeout": args.timeout, "structured": args.structured, "device": args.device}
    result = generate_knowledge(
        args.classes, args.llm, domain=args.domain, encoder=encoder, out=args.out, config=config,
        only=args.only, regenerate=args.regenerate, overwrite=args.overwrite, journal=args.journal,
        name=args.name, base=args.base, dry_run=args.dry_run, llm_options=llm_options,
        progress=not args.no_progress and sys.stderr.isatty())
    if args.dry_run:
        print(result.plan.format())
        return 0
    print(result.summary.format())
    return 0 if result.summary.ok else 1
