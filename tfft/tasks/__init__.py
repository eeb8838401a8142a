"""Task models: an encoder plus a head, one file per task."""

from tfft.tasks.sequence_classifier import SequenceClassifier

__all__ = ["SequenceClassifier"]
