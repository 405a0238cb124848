"""The web console at ``/console``: server-rendered pages over the store, admin sign-in."""

from pilothouse.console.handlers import routes

__all__ = ["routes"]
