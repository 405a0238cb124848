"""Reconstruction: what was sent, what came back, and what happened around it."""

from __future__ import annotations

from pilothouse.console.reconstruct import content_text, documents, reconstruct
from tests.unit.console.sample import MS, TRACED_CONTENT, traced_spans


def test_the_traced_request_reads_back_completely() -> None:
    rec = reconstruct(TRACED_CONTENT, traced_spans(0))
    assert rec.captured
    assert [(m.role, m.text) for m in rec.messages] == [
        ("system", "You are a helpful support agent."),
        ("user", "Where is order 1234? Reply to [EMAIL]."),
    ]
    assert ("temperature", "0.2") in rec.params and ("max_tokens", "256") in rec.params
    assert all(name != "messages" for name, _ in rec.params)
    assert [name for name, _ in rec.tools] == ["get_order"]
    assert [m.text for m in rec.response] == ["Order 1234 shipped yesterday."]
    assert rec.finish_reasons == ["stop"]
    assert [(a.number, a.outcome, a.status_code) for a in rec.attempts] == [
        (1, "error", "503"),
        (2, "ok", None),
    ]
    assert rec.attempts[0].message == "upstream returned 503: chaos injected error"
    assert rec.attempts[0].duration_ms == 400.0
    assert [(d.doc_id, d.score, d.content) for d in rec.documents] == [
        ("kb-42", "0.91", "Refunds are issued within 14 days."),
        ("kb-7", "0.77", None),
    ]
    (tool,) = rec.tool_calls
    assert (tool.name, tool.call_id, tool.origin) == ("get_order", "call_1", "span")
    assert '"order": 1234' in tool.arguments and '"status": "shipped"' in (tool.result or "")
    (guard,) = rec.guard_actions
    assert (guard.where, guard.action) == ("guard.input", "redacted")
    assert "pilothouse.guard.findings=email:1" in guard.detail


def test_tool_calls_in_the_conversation_are_paired_with_their_results() -> None:
    content = {
        "request": {
            "messages": [
                {"role": "user", "content": "weather?"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_9",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_9", "content": "-3C, snow"},
            ]
        },
        "response": {
            "choices": [
                {
                    "message": {
                        "role": "assistant",
                        "tool_calls": [
                            {"id": "c2", "function": {"name": "book", "arguments": "not json"}}
                        ],
                    },
                    "finish_reason": "tool_calls",
                }
            ]
        },
    }
    rec = reconstruct(content, [])
    asked, answered = rec.tool_calls
    assert (asked.name, asked.origin, asked.result) == ("weather", "request", "-3C, snow")
    assert '"city": "Oslo"' in asked.arguments  # pretty-printed
    assert (answered.name, answered.origin, answered.arguments) == ("book", "response", "not json")
    assert rec.finish_reasons == ["tool_calls"]


def test_multimodal_parts_are_described_not_dumped() -> None:
    text = content_text(
        [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 500}},
        ]
    )
    assert text.startswith("What is this?\n[image: data:image/png;base64,")
    assert len(text) < 150


def test_documents_in_the_shapes_clients_send() -> None:
    as_list = {
        "name": "search",
        "attributes": {"retrieval.documents": '[{"id": "d1", "score": 0.5, "content": "x"}]'},
    }
    parallel = {
        "name": "search",
        "attributes": {"app.document_ids": ["a", "b"], "app.scores": [0.9, 0.8]},
    }
    assert [(d.doc_id, d.score) for d in documents(as_list)] == [("d1", "0.5")]
    assert [(d.doc_id, d.score) for d in documents(parallel)] == [("a", "0.9"), ("b", "0.8")]
    compact = {
        "name": "retrieval",
        "attributes": {"retrieval.documents": "doc-7:0.91,doc-3:0.72, urn:x:y"},
    }
    assert [(d.doc_id, d.score) for d in documents(compact)] == [
        ("doc-7", "0.91"),
        ("doc-3", "0.72"),
        ("urn:x:y", None),
    ]
    assert documents({"name": "x", "attributes": None}) == []


def test_nothing_captured_and_embeddings_and_errors() -> None:
    assert not reconstruct(None, []).captured
    assert not reconstruct({}, []).captured
    emb = reconstruct(
        {"request": {"input": ["a", "b"]}, "response": {"data": [{"embedding": [0.1] * 8}] * 2}}, []
    )
    assert emb.messages[0].role == "input"
    assert emb.response_note == "2 embedding vector(s), 8 dimensions each"
    failed = reconstruct(
        {
            "request": {"messages": []},
            "response": {"error": {"type": "upstream_error", "message": "boom"}},
        },
        [],
    )
    assert failed.error == "upstream_error: boom"


def test_guard_events_on_any_span_are_listed() -> None:
    span = {
        "name": "chat x",
        "start_ns": 0,
        "end_ns": MS,
        "attributes": {},
        "events": [{"name": "guard.output.blocked", "time_ns": 1, "attributes": {"rule": "pii"}}],
    }
    (action,) = reconstruct(None, [span]).guard_actions
    assert (action.where, action.action, action.detail) == (
        "chat x",
        "guard.output.blocked",
        "rule=pii",
    )
