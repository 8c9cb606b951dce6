"""Which interface an app gets, without importing asyncio or inspect: a WSGI worker
decides this after the fork and must not pay for (or unshare pages with) asyncio.

ASGI when the vassal sets ``asgi``, or when the callable is an ``async def`` (also behind
``functools.partial`` or as a bound method), or an object whose ``__call__`` is one
(FastAPI, Starlette, Django's ASGIHandler); WSGI otherwise. This is what
``inspect.iscoroutinefunction`` answers, read from the code object's flags.
"""

from __future__ import annotations

import functools
from typing import Any

#: ``CO_COROUTINE`` in ``inspect``/``dis``: the code object of an ``async def``.
CO_COROUTINE = 0x80


def _is_async_def(obj: Any) -> bool:
    while isinstance(obj, functools.partial):
        obj = obj.func
    obj = getattr(obj, "__func__", obj)  # a bound method
    if getattr(obj, "_is_coroutine_marker", None) is not None:  # inspect.markcoroutinefunction (3.12)
        return True
    code = getattr(obj, "__code__", None)
    return code is not None and bool(getattr(code, "co_flags", 0) & CO_COROUTINE)


def is_asgi(obj: Any) -> bool:
    """Whether ``obj`` looks like an ASGI 3 app: an ``async def`` callable, or an instance
    whose ``__call__`` is one. A class is a plain callable (calling it makes an instance),
    and a WSGI callable is a plain function or an object with a plain ``__call__``."""
    if isinstance(obj, type):
        return False
    if _is_async_def(obj):
        return True
    if getattr(obj, "__code__", None) is not None:
        return False  # a plain function
    call = getattr(obj, "__call__", None)
    return call is not None and _is_async_def(call)


def wanted(spec: dict, app: Any) -> bool:
    """Whether the worker serves ``app`` as ASGI (see the module's doc)."""
    return bool((spec.get("app") or {}).get("asgi")) or is_asgi(app)
