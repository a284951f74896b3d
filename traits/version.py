"""The finer-traits version: one constant in the lowest layer, read by pyproject.toml and every layer above."""

__version__ = "0.1.0"
