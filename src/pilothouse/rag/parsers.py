"""Text out of Markdown, HTML, PDF and plain files, with a title where one exists.

Each format uses a maintained parser: markdown-it-py (headings kept as
``#`` lines so the chunker can split on them), selectolax for HTML (scripts,
styles and navigation dropped) and pypdf for PDF.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pilothouse.errors import InvalidRequestError

SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".rst": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}


@dataclass(frozen=True, slots=True)
class Parsed:
    text: str
    title: str | None


def parse_file(path: Path) -> Parsed:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InvalidRequestError(f"{path}: unsupported file type (known: {', '.join(SUFFIXES)})")
    if kind == "pdf":
        return parse_pdf(path)
    raw = path.read_text(encoding="utf-8", errors="replace")
    if kind == "markdown":
        return parse_markdown(raw)
    if kind == "html":
        return parse_html(raw)
    return Parsed(raw, None)


def parse_markdown(raw: str) -> Parsed:
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(raw)
    lines: list[str] = []
    title: str | None = None
    heading = 0
    for tok in tokens:
        if tok.type == "heading_open":
            heading = int(tok.tag[1:])
        elif tok.type == "inline":
            content = (
                "".join(
                    " " if child.type in ("softbreak", "hardbreak") else child.content
                    for child in tok.children or []
                )
                or tok.content
            )
            if heading:
                title = title or content
                lines.append("\n" + "#" * heading + " " + content)
                heading = 0
            else:
                lines.append(content + "\n")
        elif tok.type in ("fence", "code_block"):
            lines.append(tok.content + "\n")
    return Parsed("\n".join(lines).strip(), title)


def parse_html(raw: str) -> Parsed:
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    tree = HTMLParser(raw)
    for node in tree.css("script, style, nav, noscript, header, footer"):
        node.decompose()
    title_node = tree.css_first("title") or tree.css_first("h1")
    title = title_node.text(strip=True) if title_node else None
    root = tree.body or tree.root
    if root is None:
        return Parsed("", title)
    for level in range(1, 7):
        for h in root.css(f"h{level}"):
            h.replace_with("\n\n" + "#" * level + " " + h.text(separator=" ", strip=True) + "\n\n")
    for block in root.css("p, li, pre, dd, dt, tr, div.section, section"):
        block.insert_after("\n\n")
    text = root.text(separator=" ")
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n")]
    cleaned = "\n\n".join(p for p in paragraphs if p)
    cleaned = cleaned.replace("\n\n#", "\n#")
    return Parsed(cleaned, title)


def parse_pdf(path: Path) -> Parsed:
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    pages = [page.extract_text() or "" for page in reader.pages]
    meta = reader.metadata
    title = str(meta.title) if meta is not None and meta.title else None
    return Parsed("\n\n".join(p.strip() for p in pages if p.strip()), title)
