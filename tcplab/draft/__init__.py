"""Drafts of lab files from what a person already has (a capture): pure, no engine, no Typer."""
from .from_pcap import CaptureError, Draft, draft_lab, list_connections, read_capture_file

__all__ = ["CaptureError", "Draft", "draft_lab", "list_connections", "read_capture_file"]
