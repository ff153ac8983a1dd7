"""Exports of a lab to formats other tools run without tcplab (``lab export``)."""
from .compose import FORMATS, ComposeExport, ExportError, export_compose, export_to

__all__ = ["FORMATS", "ComposeExport", "ExportError", "export_compose", "export_to"]
