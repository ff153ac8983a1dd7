"""tcplab: reproducible TCP experiments in containers."""

__version__ = "0.1.0"
