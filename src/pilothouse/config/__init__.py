"""Configuration: a typed, frozen schema and the loader that validates it."""

from pilothouse.config.load import load_settings, parse_settings
from pilothouse.config.schema import Secret, Settings

__all__ = ["Secret", "Settings", "load_settings", "parse_settings"]
