"""accelsim: cycle-level simulator of N:M activation-sparse accelerators, driven by real LLM traces."""

__version__ = "0.1.0"
