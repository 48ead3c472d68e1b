"""Reports for people: terminal and Markdown tables, PNG charts, the benchmark report folder."""

from .tables import format_summary, method_labels

__all__ = ["format_summary", "method_labels"]
