"""The tamper-evident audit log: one writer (:func:`append`) for every change."""

from pilothouse.audit.log import append, head, read_rows, verify

__all__ = ["append", "head", "read_rows", "verify"]
