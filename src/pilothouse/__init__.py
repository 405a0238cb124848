"""pilothouse: an LLMOps platform in one package.

The public surface is deliberately small; everything else is importable from
its module but not promised stable.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
