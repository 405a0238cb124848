"""``multipart/form-data`` bodies (RFC 7578) as the OpenAI clients send ``POST /v1/files``.

Form uploads are flat (no nested multiparts, no transfer encodings), so splitting
on the boundary is exact and keeps a 100 MB upload a handful of byte slices;
part headers are read with the standard library's ``email.message`` parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from pilothouse.errors import InvalidRequestError


@dataclass(frozen=True, slots=True)
class Part:
    name: str
    filename: str | None
    content: bytes


def _boundary(content_type: str | None) -> bytes:
    header = Message()
    header["content-type"] = content_type or ""
    if header.get_content_type() != "multipart/form-data":
        raise InvalidRequestError(
            "upload files as multipart/form-data with a `file` and a `purpose` field",
            code="invalid_content_type",
        )
    boundary = header.get_param("boundary")
    if not isinstance(boundary, str) or not boundary or len(boundary) > 200:
        raise InvalidRequestError("the multipart/form-data body has no boundary")
    return boundary.encode("latin-1")


def parse_form(content_type: str | None, body: bytes) -> dict[str, Part]:
    """The form's parts by field name (the first one of each name)."""
    delimiter = b"--" + _boundary(content_type)
    chunks = body.split(delimiter)
    if len(chunks) < 3 or not chunks[-1].startswith(b"--"):
        raise InvalidRequestError("the multipart/form-data body is malformed or truncated")
    parts: dict[str, Part] = {}
    for chunk in chunks[1:-1]:
        if not chunk.startswith(b"\r\n"):
            raise InvalidRequestError("the multipart/form-data body is malformed")
        head, sep, content = chunk[2:].partition(b"\r\n\r\n")
        if not sep or not content.endswith(b"\r\n"):
            raise InvalidRequestError("a multipart/form-data part is malformed")
        headers = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                headers[name.strip()] = value.strip()
        field = headers.get_param("name", header="content-disposition")
        if not isinstance(field, str):
            raise InvalidRequestError("a multipart/form-data part has no field name")
        filename = headers.get_filename()
        parts.setdefault(field, Part(field, filename, content[:-2]))
    return parts
