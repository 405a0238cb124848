"""The HTTP gateway: OpenAI-compatible routes, admin API, one request pipeline."""
