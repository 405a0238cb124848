"""Tables of the Batch API (migration 0011): uploaded files, batches and one row per line.

A line's row is its unit of exactly-once: the runner moves it out of ``pending``
in the same transaction that inserts its usage record, so a line is finished
once or not at all, whatever replica ran it and whenever a process died.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from pilothouse.store.tables import metadata

files = Table(
    "files",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(32), nullable=True),  # owner; output files: the batch's key
    Column("purpose", String(32), nullable=False),  # batch | batch_output
    Column("filename", String(255), nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("content", LargeBinary, nullable=False),
    Column("batch_id", String(40), nullable=True),  # set on a batch's output/error file
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_files_key_created", "key_id", "created_at"),
)

batches = Table(
    "batches",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("key_id", String(32), nullable=False),
    Column("endpoint", String(64), nullable=False),
    Column("input_file_id", String(40), nullable=False),
    Column("completion_window", String(8), nullable=False),
    Column("status", String(16), nullable=False),
    Column("metadata", JSON, nullable=True),
    Column("errors", JSON, nullable=True),
    Column("output_file_id", String(40), nullable=True),
    Column("error_file_id", String(40), nullable=True),
    Column("total", Integer, nullable=False, default=0),
    Column("completed", Integer, nullable=False, default=0),
    Column("failed", Integer, nullable=False, default=0),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("in_progress_at", DateTime(timezone=True), nullable=True),
    Column("finalizing_at", DateTime(timezone=True), nullable=True),
    Column("completed_at", DateTime(timezone=True), nullable=True),
    Column("failed_at", DateTime(timezone=True), nullable=True),
    Column("expired_at", DateTime(timezone=True), nullable=True),
    Column("cancelling_at", DateTime(timezone=True), nullable=True),
    Column("cancelled_at", DateTime(timezone=True), nullable=True),
    # The replica running it and until when (a lease: a dead replica's batch is taken over).
    Column("lease_owner", String(64), nullable=True),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Index("ix_batches_key_created", "key_id", "created_at"),
    Index("ix_batches_status", "status"),
)

batch_lines = Table(
    "batch_lines",
    metadata,
    Column("batch_id", String(40), primary_key=True),
    Column("line", Integer, primary_key=True),  # 1-based line number in the input file
    Column("custom_id", Text, nullable=False),
    Column("body", JSON, nullable=False),
    # pending → done (2xx) | failed (an error answer) | cancelled | expired
    Column("state", String(12), nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("result", JSON, nullable=True),  # the output/error file line, as written
    Column("request_id", String(64), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    UniqueConstraint("batch_id", "custom_id", name="uq_batch_lines_custom_id"),
    Index("ix_batch_lines_state", "batch_id", "state", "line"),
)
