"""The ``pilothouse`` command line."""
