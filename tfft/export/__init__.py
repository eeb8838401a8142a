"""Exporting trained models for serving."""

from tfft.export.saved_model import export_saved_model

__all__ = ["export_saved_model"]
