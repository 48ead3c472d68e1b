"""Default settings, in a module light enough for the CLI to import at start-up."""

#: Number of stage-1 candidates the one-vs-one rerank considers (the paper's K).
DEFAULT_TOP_K = 5
#: Confidence gap below which a sample is reranked: p(top1) - p(top2) < tau. 0.5 reranks every
#: sample whose best class has not won by at least half of the probability mass; reports show the
#: whole accuracy-versus-tau curve (docs/design.md explains the choice).
DEFAULT_TAU = 0.5
