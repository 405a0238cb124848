"""User code named in a suite as ``"module:function"``: import it and call it safely.

A module next to the suite file is loaded from that file under a private
name, so two suites in different folders may both have ``my_scorers.py``
without one shadowing the other. Sync functions run in a worker thread so a
slow one never blocks the event loop; async ones are awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from pilothouse.evals.errors import SuiteError


def resolve_ref(ref: str, base_dir: Path, *, what: str) -> Callable[..., Any]:
    """The callable named by ``ref``; a :class:`SuiteError` naming ``what`` otherwise."""
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise SuiteError(f"{what}: {ref!r} must look like 'module:function'")
    module = _import(module_name, base_dir, what)
    obj: Any = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise SuiteError(f"{what}: module {module_name!r} has no attribute {attr!r}") from None
    if not callable(obj):
        raise SuiteError(f"{what}: {ref!r} is not callable")
    return obj  # type: ignore[no-any-return]


@contextlib.contextmanager
def _on_path(base_dir: Path) -> Iterator[None]:
    entry = str(base_dir)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(entry)


def _import(module_name: str, base_dir: Path, what: str) -> ModuleType:
    local = base_dir / f"{module_name}.py"
    try:
        with _on_path(base_dir):
            if "." not in module_name and local.is_file():
                return _load_file(local)
            return importlib.import_module(module_name)
    except SuiteError:
        raise
    except Exception as exc:
        raise SuiteError(
            f"{what}: cannot import {module_name!r}: {type(exc).__name__}: {exc}"
        ) from None


def _load_file(path: Path) -> ModuleType:
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    name = f"_pilothouse_suite_{digest}_{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SuiteError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def accepted(fn: Callable[..., Any]) -> tuple[int, frozenset[str], bool]:
    """(positional parameter count, parameter names, accepts **kwargs) of ``fn``."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return 1, frozenset(), False
    positional = sum(
        1
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
    )
    names = frozenset(p.name for p in params if p.kind != p.VAR_KEYWORD)
    var_kw = any(p.kind == p.VAR_KEYWORD for p in params)
    return positional, names, var_kw


def keyword_args(fn: Callable[..., Any], available: Mapping[str, Any]) -> dict[str, Any]:
    """The subset of ``available`` that ``fn`` declares (all of it for ``**kwargs``)."""
    _positional, names, var_kw = accepted(fn)
    return {k: v for k, v in available.items() if var_kw or k in names}


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Await an async function; run a sync one in a thread (never on the event loop)."""
    if inspect.iscoroutinefunction(fn):
        return await fn(*args, **kwargs)
    result = await asyncio.to_thread(fn, *args, **kwargs)
    if inspect.isawaitable(result):
        return await result
    return result
