"""Honest evaluation: label-free predictions (:mod:`.predict`), then metrics from labels
(:mod:`.metrics`), with provenance (:mod:`.provenance`); :func:`evaluate` runs one dataset,
:mod:`.suite` runs datasets × models (the ``benchmark`` command)."""

from .metrics import confused_pairs, score_zero_shot
from .predict import (ABLATION, DEFAULT_KS, DEFAULT_TAUS, METHOD_LABELS, ZeroShotPredictions,
                      predict_zero_shot)
from .provenance import provenance
from .run import REPORT_FORMAT, REPORT_VERSION, evaluate, predict_then_label

__all__ = ["ABLATION", "DEFAULT_KS", "DEFAULT_TAUS", "METHOD_LABELS", "REPORT_FORMAT",
           "REPORT_VERSION", "ZeroShotPredictions", "confused_pairs", "evaluate",
           "predict_then_label", "predict_zero_shot", "provenance", "score_zero_shot"]
