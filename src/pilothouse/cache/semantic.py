"""The semantic cache: exact normalised match first, then a gated nearest neighbour.

A request is split into the last user turn (compared by meaning) and
everything else that decides the answer (system prompt, earlier turns, the
sampling parameters, the prompt version, the model route, RAG citations),
which must match exactly: it names the *partition* an entry lives in, together
with the scope (key, team or global, always inside one tenant). A prompt
version, route or cited-document change therefore starts a new partition and
old entries are never served again (they age out by TTL/LRU).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from pilothouse.cache import gate
from pilothouse.cache.vector_index import Entry, VectorIndex

# Fields that never change the answer (or are compared by meaning, not bytes).
_IGNORED = frozenset({"stream", "stream_options", "user", "metadata", "messages", "model"})
_SPACE = re.compile(r"\s+")

Embed = Callable[[str, str], Awaitable[np.ndarray]]  # (embedder alias, text) -> unit vector


def normalise(text: str) -> str:
    return _SPACE.sub(" ", text).strip().strip("?!. ").lower()


def message_text(message: Mapping[str, Any]) -> str | None:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" for p in content
    ):
        return "\n".join(str(p.get("text", "")) for p in content)
    return None  # images, audio, files: not cached by meaning


def split_request(request: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(last user turn, the rest of the request that decides the answer), or None."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    text = message_text(last)
    if text is None or not text.strip():
        return None
    rest = {k: v for k, v in request.items() if k not in _IGNORED}
    rest["messages"] = messages[:-1]
    metadata = request.get("metadata")
    if isinstance(metadata, dict) and metadata.get("citations") is not None:
        rest["citations"] = metadata["citations"]  # RAG answers: see docs/cache.md
    return text, rest


def refusal(request: Mapping[str, Any], *, allow_nonzero_temperature: bool) -> str | None:
    """Why this request must not be answered from (or stored in) the semantic cache."""
    if request.get("tools") or request.get("functions") or request.get("tool_choice"):
        return "tools"
    messages = request.get("messages") or []
    if any(
        isinstance(m, dict) and (m.get("role") == "tool" or m.get("tool_calls")) for m in messages
    ):
        return "tools"
    temperature = request.get("temperature")
    if isinstance(temperature, int | float) and temperature > 0 and not allow_nonzero_temperature:
        return "temperature"
    if isinstance(request.get("n"), int) and request["n"] > 1:
        return "n"
    return None


def partition_id(
    alias: str, scope: str, version: Mapping[str, Any], rest: Mapping[str, Any]
) -> str:
    material = {"alias": alias, "scope": scope, "version": version, "rest": rest}
    return hashlib.sha256(orjson.dumps(material, option=orjson.OPT_SORT_KEYS)).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class Hit:
    kind: str  # "hit" (exact normalised) | "semantic"
    entry: Entry
    similarity: float


@dataclass(frozen=True, slots=True)
class Lookup:
    partition: str
    text: str  # the normalised last user turn
    vector: np.ndarray | None
    hit: Hit | None
    rejected: str | None = None  # the gate's reason for the best candidate it refused


class SemanticCache:
    """Look up and store answers for one alias configuration; the index is shared."""

    def __init__(
        self,
        index: VectorIndex,
        embed: Embed,
        *,
        entities: gate.EntityFinder | None = None,
        candidates: int = 5,
    ) -> None:
        self.index = index
        self.embed = embed
        self.entities = entities or gate.entity_finder()
        self.candidates = candidates

    async def lookup(
        self,
        partition: str,
        raw_text: str,
        *,
        embedder: str,
        threshold: float,
        verifier: gate.Verifier | None = None,
    ) -> Lookup:
        text = normalise(raw_text)
        exact = await self.index.exact(partition, text)
        if exact is not None:
            return Lookup(partition, text, None, Hit("hit", exact, 1.0))
        vector = await self.embed(embedder, raw_text)
        found = await self.index.nearest(partition, vector, threshold, self.candidates)
        mine = gate.features(raw_text, self.entities)
        rejected = None
        for cand in found:
            verdict = gate.compare(mine, gate.features(cand.entry.query, self.entities))
            if not verdict.ok:
                rejected = rejected or verdict.reason
                continue
            if verifier is not None and not await verifier.verify(raw_text, cand.entry.query):
                rejected = rejected or "verifier"
                continue
            return Lookup(partition, text, vector, Hit("semantic", cand.entry, cand.similarity))
        return Lookup(partition, text, vector, None, rejected)

    async def store(self, lookup: Lookup, embedder: str, raw_text: str, entry: Entry) -> None:
        vector = (
            lookup.vector if lookup.vector is not None else await self.embed(embedder, raw_text)
        )
        await self.index.add(lookup.partition, vector, entry)


def unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v
