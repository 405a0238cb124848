"""Guard types by name: the built-ins, ``pilothouse.guards`` entry points, or ``module:Class``.

Like providers, a guard type is a plugin: a class (or factory) taking
``(spec, resources)``. Third-party guards register an entry point; a config
may also name one as ``package.module:Class`` (config is operator-trusted).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from pilothouse.guard.base import GuardFactory, GuardRegistry

BUILTIN_TYPES: dict[str, str] = {
    "pii": "pilothouse.guard.pii:PiiGuard",
    "secrets": "pilothouse.guard.detectors:SecretsGuard",
    "injection": "pilothouse.guard.injection:InjectionGuard",
    "regex": "pilothouse.guard.detectors:RegexGuard",
    "content": "pilothouse.guard.content:ContentGuard",
    "canary": "pilothouse.guard.detectors:CanaryGuard",
}


def load_factory(target: str) -> GuardFactory:
    module_name, _, attr = target.partition(":")
    try:
        factory: GuardFactory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot load guard type {target!r}: {exc}") from None
    return factory


def default_registry() -> GuardRegistry:
    reg = GuardRegistry()
    types = dict(BUILTIN_TYPES)
    for ep in entry_points(group="pilothouse.guards"):
        types.setdefault(ep.name, ep.value)
    for name, target in types.items():
        reg.register_lazy(name, target)
    return reg
