"""Honest flags, measured: a guard that watches label sources and records whether their labels were
read only after the predictions (or hyper-parameters) were final.

A report's ``labels_read_after_predictions`` (and few-shot's
``test_labels_read_after_hyperparameters``) is what :meth:`LabelGuard.honest` measured, never a
literal: it is false when a watched source's labels were read between the guard's start and
:meth:`LabelGuard.final`, or never read after it.
"""

from __future__ import annotations

from ..datasets.base import LabelLog, next_event


class LabelGuard:
    """Watches label sources (:class:`~coderclip.datasets.ImageDataset`,
    :class:`~coderclip.datasets.Labels`) from its creation on."""

    def __init__(self, *sources: LabelLog) -> None:
        self.sources = sources
        self.started = next_event()
        self.final_at: int | None = None

    def final(self) -> None:
        """Note that predictions (or chosen hyper-parameters) are final from now on."""
        self.final_at = next_event()

    def reads(self) -> list[int]:
        """Event numbers of the watched sources' label reads since the guard started."""
        return sorted(r for s in self.sources for r in getattr(s, "label_reads", []) if r > self.started)

    def honest(self) -> bool:
        """Labels were read, and every read came after :meth:`final`."""
        reads = self.reads()
        return self.final_at is not None and bool(reads) and reads[0] > self.final_at
