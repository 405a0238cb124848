"""Build the BEIR corpus of ``benchmarks/data/pydoc-beir`` from Debian's python3-doc HTML.

    apt-get install python3-doc        # Python 3.11.2 HTML under /usr/share/doc/python3.11/html
    python benchmarks/data/make_pydoc_beir.py [--html DIR] [--out DIR]

Each document is one section of a page (its own text, without its subsections),
extracted with the project's HTML parser (selectolax), id ``page#section-anchor``
(e.g. ``library/json#basic-usage``), title ``page title: heading``. The page list
is fixed and the output sorted, so the same HTML gives byte-identical output.
``queries.jsonl`` and ``qrels/`` are hand-written and are not touched here.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from pilothouse.rag.parsers import parse_html

HTML = Path("/usr/share/doc/python3.11/html")
OUT = Path(__file__).parent / "pydoc-beir"
# Tutorial, FAQ, HOWTOs, the most used library modules and the statement/expression reference.
PAGES = """
tutorial/appetite tutorial/interpreter tutorial/introduction tutorial/controlflow
tutorial/datastructures tutorial/modules tutorial/inputoutput tutorial/errors tutorial/classes
tutorial/stdlib tutorial/stdlib2 tutorial/venv tutorial/floatingpoint
faq/general faq/programming faq/design faq/library faq/extending
howto/logging howto/regex howto/sorting howto/argparse howto/unicode howto/urllib2
howto/descriptor howto/functional
library/functions library/constants library/stdtypes library/exceptions library/string
library/re library/datetime library/collections library/collections.abc
library/heapq library/bisect library/enum library/copy library/pprint library/math
library/random library/statistics library/decimal library/fractions library/itertools
library/functools library/operator library/pathlib library/os.path library/os library/io
library/time library/argparse library/logging library/getpass library/shutil library/glob
library/fnmatch library/tempfile library/pickle library/shelve library/sqlite3 library/zipfile
library/tarfile library/csv library/configparser library/tomllib library/hashlib library/hmac
library/secrets library/json library/base64 library/struct library/textwrap library/difflib
library/threading library/multiprocessing library/concurrent.futures library/subprocess
library/sched library/queue library/contextvars library/asyncio-task library/asyncio-eventloop
library/asyncio-queue library/asyncio-subprocess library/asyncio-sync library/signal
library/urllib.request library/urllib.parse library/http.client library/http.server
library/smtplib library/uuid library/unittest library/unittest.mock
library/venv library/typing library/dataclasses library/contextlib library/abc library/atexit
library/traceback library/warnings library/inspect library/sys library/pdb
library/timeit library/profile library/gc library/weakref library/types library/array
library/platform library/shlex library/gzip library/zlib library/lzma library/bz2
library/calendar library/graphlib
reference/simple_stmts reference/compound_stmts reference/expressions reference/executionmodel
glossary
""".split()  # noqa: SIM905 - readable as a list
MIN_WORDS = 40
MAX_WORDS = 1000


def sections(page: str, raw: str) -> list[dict[str, str]]:
    from selectolax.lexbor import LexborHTMLParser

    tree = LexborHTMLParser(raw)
    title_node = tree.css_first("h1")
    page_title = (title_node.text(strip=True) if title_node else page).rstrip("¶").strip()
    out = []
    for node in tree.css("section[id]"):
        own = LexborHTMLParser(node.html or "")
        inner = own.css_first("section")
        if inner is None:
            continue
        for child in inner.css("section section"):
            child.decompose()
        for link in inner.css("a.headerlink"):
            link.decompose()
        heading = inner.css_first("h1, h2, h3, h4, h5, h6")
        name = heading.text(separator=" ", strip=True) if heading else node.attributes["id"]
        sid = node.attributes["id"] or ""
        title = page_title if name == page_title else f"{page_title}: {name}"
        if len(_text(inner.html or "").split()) > MAX_WORDS:
            # a long reference section (built-in functions, os, sys...): one document per
            # top-level API entry (its <dt id>), the rest of the prose stays the section's
            for entry in inner.css("dl.py"):
                if _nested(entry):
                    continue
                dt = entry.css_first("dt[id]")
                if dt is None:
                    continue
                text = _text(entry.html or "")
                if len(text.split()) >= MIN_WORDS:  # short entries stay in the prose
                    key = dt.attributes["id"] or ""
                    entry_title = f"{page_title}: {key}"
                    out.append({"_id": f"{page}#{key}", "title": entry_title, "text": _cap(text)})
                    entry.decompose()
        text = _text(inner.html or "")
        if len(text.split()) >= MIN_WORDS:
            out.append({"_id": f"{page}#{sid}", "title": title, "text": _cap(text)})
    return out


def _nested(node: Any) -> bool:
    """Inside another API entry's description (a method of a class)?"""
    parent = node.parent
    while parent is not None and parent.tag != "section":
        if parent.tag == "dd":
            return True
        parent = parent.parent
    return False


def _text(html: str) -> str:
    return parse_html("<html><body>" + html + "</body></html>").text


def _cap(text: str) -> str:
    words = text.split(" ")
    return text if len(words) <= MAX_WORDS else " ".join(words[:MAX_WORDS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", type=Path, default=HTML)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    docs: dict[str, dict[str, str]] = {}
    for page in dict.fromkeys(PAGES):
        path = args.html / f"{page}.html"
        for doc in sections(page, path.read_text(encoding="utf-8")):
            docs.setdefault(doc["_id"], doc)
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "corpus.jsonl").open("w", encoding="utf-8") as fh:
        for key in sorted(docs):
            fh.write(json.dumps(docs[key], ensure_ascii=False, sort_keys=True) + "\n")
    words = sum(len(re.findall(r"\S+", d["text"])) for d in docs.values())
    print(f"{len(docs)} documents, {words} words -> {args.out / 'corpus.jsonl'}")


if __name__ == "__main__":
    main()
