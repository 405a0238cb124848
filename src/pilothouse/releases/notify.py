"""Telling every gateway replica that a label moved: one Redis channel, one message format.

Gateways subscribe to ``<prefix>prompts:labels`` and drop the cached
label → version entry named by a message (``NAME\\x00LABEL``). Writers that are
not gateways (the CLI acting on the store directly) publish here too, so a move
made from a laptop reaches every replica at once; the one-second store poll
stays the safety net when Redis is down or not configured.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from redis.asyncio import Redis

from pilothouse.config.schema import RedisConfig

log = logging.getLogger("pilothouse.releases")
LABEL_MOVES = "prompts:labels"


def channel(config: RedisConfig) -> str:
    return config.prefix + LABEL_MOVES


def message(name: str, label: str) -> str:
    return f"{name}\x00{label}"


def parse(data: bytes | str) -> tuple[str, str]:
    text = data.decode() if isinstance(data, bytes) else str(data)
    name, _, label = text.partition("\x00")
    return name, label


async def publish(redis: Redis, config: RedisConfig, moves: Iterable[tuple[str, str]]) -> None:
    for name, label in moves:
        await redis.publish(channel(config), message(name, label))


async def publish_from_cli(config: RedisConfig, moves: list[tuple[str, str]]) -> str | None:
    """Publish moves made outside a gateway; a warning text when Redis could not be told.

    The move is already committed: failing to publish only means replicas learn it
    from their store poll (within about a second) instead of at once.
    """
    if not config.url or not moves:
        return None
    redis = Redis.from_url(config.url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        await publish(redis, config, moves)
    except Exception as exc:  # redis down: the store poll still delivers the move
        log.debug("label move publish failed: %s", exc)
        return (
            f"could not tell gateways through Redis ({type(exc).__name__}); "
            "they pick the move up from the store within about a second"
        )
    finally:
        await redis.aclose()
    return None
