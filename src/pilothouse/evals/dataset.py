"""Datasets: JSONL, CSV or YAML rows → :class:`Case` objects, with row-precise errors.

Case ids are required and unique: they are how a run is paired with its
baseline, so they must not depend on row order.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec
import orjson
import yaml

from pilothouse.evals.errors import SuiteError
from pilothouse.evals.model import Case

FORMATS = (".jsonl", ".json", ".csv", ".yaml", ".yml")
_CASE_KEYS = ("id", "input", "expected", "context", "metadata")


def load_dataset(path: Path) -> list[Case]:
    """Read a dataset file; the format follows the file extension."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SuiteError(f"{path}: unsupported dataset format; use one of {', '.join(FORMATS)}")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SuiteError(f"{path}: cannot read dataset: {exc.strerror or exc}") from None
    if suffix == ".jsonl":
        rows = _jsonl_rows(text, path)
    elif suffix == ".csv":
        rows = _csv_rows(text)
    else:
        rows = _document_rows(text, path)
    return cases_from_rows(rows, str(path))


def cases_from_rows(rows: Iterable[tuple[int, Any]], source: str) -> list[Case]:
    """Validate ``(row number, mapping)`` pairs; duplicate ids are an error."""
    cases: list[Case] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        case = _case(row, f"{source}:{number}")
        if case.id in seen:
            raise SuiteError(
                f"{source}:{number}: duplicate case id {case.id!r} (first at row {seen[case.id]})"
            )
        seen[case.id] = number
        cases.append(case)
    if not cases:
        raise SuiteError(f"{source}: the dataset has no cases")
    return cases


def _case(row: Any, where: str) -> Case:
    if not isinstance(row, dict):
        raise SuiteError(f"{where}: expected an object with `id` and `input`")
    unknown = sorted(set(row) - set(_CASE_KEYS))
    if unknown:
        raise SuiteError(
            f"{where}: unknown field(s) {', '.join(unknown)}; put extra fields under `metadata`"
        )
    if row.get("id") in (None, ""):
        raise SuiteError(f"{where}: missing `id` (ids pair a run with its baseline)")
    if "input" not in row:
        raise SuiteError(f"{where}: missing `input`")
    fixed = {**row, "id": str(row["id"])}
    try:
        case = msgspec.convert(fixed, Case, strict=False)
    except msgspec.ValidationError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    if isinstance(case.input, list):
        _check_messages(case.input, where)
    return case


def _check_messages(messages: list[dict[str, Any]], where: str) -> None:
    if not messages:
        raise SuiteError(f"{where}: `input` messages must not be empty")
    for i, message in enumerate(messages):
        if "role" not in message or "content" not in message:
            raise SuiteError(f"{where}: input[{i}] needs `role` and `content`")


def _jsonl_rows(text: str, path: Path) -> list[tuple[int, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append((number, orjson.loads(line)))
        except orjson.JSONDecodeError as exc:
            raise SuiteError(f"{path}:{number}: invalid JSON: {exc}") from None
    return rows


def _csv_rows(text: str) -> list[tuple[int, Any]]:
    """Columns id, input, expected, context; any other column becomes metadata.

    Cells starting with ``{`` or ``[`` are parsed as JSON, so structured
    expected values (extraction tasks) fit in a spreadsheet too.
    """
    reader = csv.DictReader(io.StringIO(text))
    rows = []
    for row in reader:
        case: dict[str, Any] = {"metadata": {}}
        for key, cell in row.items():
            if key is None or cell is None or cell == "":
                continue
            value = _cell(cell)
            if key in _CASE_KEYS and key != "metadata":
                case[key] = value if key != "id" else cell
            else:
                case["metadata"][key.removeprefix("metadata.")] = value
        rows.append((reader.line_num, case))
    return rows


def _cell(cell: str) -> Any:
    if cell[:1] in "{[":
        try:
            return orjson.loads(cell)
        except orjson.JSONDecodeError:
            return cell
    return cell


def _document_rows(text: str, path: Path) -> list[tuple[int, Any]]:
    try:
        data = yaml.safe_load(text) if path.suffix != ".json" else orjson.loads(text)
    except (yaml.YAMLError, orjson.JSONDecodeError) as exc:
        raise SuiteError(f"{path}: cannot parse: {exc}") from None
    if isinstance(data, dict) and "cases" in data:
        data = data["cases"]
    if not isinstance(data, list):
        raise SuiteError(f"{path}: expected a list of cases (or a mapping with `cases:`)")
    return [(i, row) for i, row in enumerate(data, start=1)]
