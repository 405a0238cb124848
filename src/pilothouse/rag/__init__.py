"""RAG operations: ingest, chunk, embed through the gateway, index, search, evaluate."""
