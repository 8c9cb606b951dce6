"""ASGI 3 apps (FastAPI, Starlette, Django's ASGIHandler) in a Python worker: an asyncio
server (``server.py``) for http-socket (with WebSockets, ``websocket.py``) and the uwsgi
protocol, the ``lifespan`` protocol (``lifespan.py``). See docs/asgi.md.

Which interface an app gets (``wanted``): ASGI when the vassal sets ``asgi``, or when its
callable is an ``async def`` or an object whose ``__call__`` is one; WSGI otherwise.
"""

from __future__ import annotations

from .detect import is_asgi, wanted

__all__ = ["is_asgi", "wanted"]
