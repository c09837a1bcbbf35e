"""Offline evaluation: ranking metrics and the temporal protocol of ../shared/EVALUATION.md."""

from workbench.evaluation import metrics
from workbench.evaluation.protocol import Cases, build_cases, evaluate, temporal_split, validation_split

__all__ = ["Cases", "build_cases", "evaluate", "metrics", "temporal_split", "validation_split"]
