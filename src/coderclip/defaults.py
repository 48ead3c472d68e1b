"""Default settings, in a module light enough for the CLI to import at start-up."""

#: Number of stage-1 candidates the one-vs-one rerank considers (the paper's K).
DEFAULT_TOP_K = 5
#: Confidence gap below which a sample is reranked: p(top1) - p(top2) < tau. 0.5 reranks every
#: sample whose best class has not won by at least half of the probability mass; reports show the
#: whole accuracy-versus-tau curve (docs/design.md explains the choice).
DEFAULT_TAU = 0.5

#: Every zero-shot method, in report order (labels in coderclip.evaluation.predict.METHOD_LABELS).
ZERO_SHOT_METHODS = ("clip", "clip-ensemble", "waffle", "dclip", "cupl", "cupl-templates", "coder",
                     "coder-rerank")
#: The methods a report shows unless asked otherwise.
DEFAULT_METHODS = ("clip", "clip-ensemble", "waffle", "dclip", "cupl", "coder", "coder-rerank")
#: Methods ``coderclip serve`` offers unless told otherwise (each builds its own text bank).
SERVED_METHODS = ("coder-rerank", "coder", "clip", "clip-ensemble")
