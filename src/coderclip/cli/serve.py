"""``coderclip serve``: the classifier as an HTTP service with a web page."""

from __future__ import annotations

import argparse

from . import example_formatter
from ._common import add_knowledge_args, add_rerank_args

EXAMPLES = """\
examples:
  coderclip serve -m testbed -k testbed                 # http://127.0.0.1:8000/ (page), /openapi.json (API)
  coderclip serve -m open_clip:ViT-B-32:openai -k food101 --port 9000
  CODERCLIP_API_KEY=$(python -c 'import secrets; print(secrets.token_urlsafe(32))') \\
    coderclip serve -m testbed -k testbed --host 0.0.0.0 --workers 2

  curl -F images=@photo.jpg -F top_k=3 -F explain=true http://127.0.0.1:8000/v1/classify

Binding to anything but a loopback address requires an API key in CODERCLIP_API_KEY. Each worker
process loads its own copy of the model and text banks (memory grows with --workers).
"""


#: numeric service options: flag, type, help (defaults from ServeSettings)
_TUNING = [
    ("workers", int, "worker processes, each with its own model copy"),
    ("max-batch", int, "most images encoded together"),
    ("batch-window-ms", float, "how long a batch waits for more requests, in ms"),
    ("max-queued", int, "images waiting before new requests get 503"),
    ("max-upload-mb", float, "largest request body, in MB"),
    ("max-images", int, "most images per request"),
    ("max-pixels", int, "largest image, in pixels"),
]


def add_parser(sub) -> None:
    from ..defaults import ZERO_SHOT_METHODS
    from ..serve import ServeSettings

    d = ServeSettings(model="")
    p = sub.add_parser("serve", help="serve classification over HTTP (API and web page)",
                       description="Load a model and knowledge once and answer classification "
                                   "requests over HTTP: POST /v1/classify, GET /v1/classes, "
                                   "/v1/model, /healthz, the OpenAPI schema /openapi.json and a web page at /.",
                       epilog=EXAMPLES, formatter_class=example_formatter)
    g = p.add_argument_group("model")
    g.add_argument("--model", "-m", required=True, help="model spec, as for classify (e.g. testbed)")
    g.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    g.add_argument("--precision", default=None, choices=["fp32", "fp16", "bf16"])
    g.add_argument("--no-cache", action="store_true", help="do not use the text-embedding cache")
    add_knowledge_args(p)
    add_rerank_args(p)
    g = p.add_argument_group("service")
    g.add_argument("--method", default=d.method,
                   help=f"method used when a request names none (default {d.method})")
    g.add_argument("--methods", default=",".join(d.methods),
                   help="comma-separated methods to offer, each building its own text bank "
                        f"(default {','.join(d.methods)}; any of {', '.join(ZERO_SHOT_METHODS)})")
    g.add_argument("--host", default=d.host,
                   help="address to bind (default 127.0.0.1; others need CODERCLIP_API_KEY)")
    g.add_argument("--port", type=int, default=d.port, help=f"port (default {d.port})")
    for flag, kind, help_ in _TUNING:
        default = getattr(d, flag.replace("-", "_"))
        g.add_argument(f"--{flag}", type=kind, default=default, help=f"{help_} (default {default:,})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..serve import ServeSettings, configure_logging, run as serve_run

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if args.method not in methods:
        methods = (args.method, *methods)
    for name in ("workers", "max_batch", "max_queued", "max_images", "max_pixels"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be between 1 and 65535, got {args.port}")
    settings = ServeSettings(
        model=args.model, knowledge=args.knowledge, classes=args.classes, domain=args.domain,
        methods=methods, method=args.method, rerank_k=args.rerank_k, tau=args.tau,
        device=args.device, precision=args.precision, cache=not args.no_cache, host=args.host,
        port=args.port, workers=args.workers, max_batch=args.max_batch,
        batch_window_ms=args.batch_window_ms, max_queued=args.max_queued,
        max_upload_mb=args.max_upload_mb, max_images=args.max_images, max_pixels=args.max_pixels)
    configure_logging()
    serve_run(settings)
    return 0
