"""The ASGI ``lifespan`` protocol (ASGI spec, "Lifespan Protocol" 2.0): startup before
the worker says it is ready, shutdown when it stops gracefully.

An app that raises before it ever calls ``receive`` on the lifespan scope, or returns
without answering, does not speak the protocol (a plain ``async def app`` that only knows
``http``): the worker goes on without it, as uvicorn's ``--lifespan auto`` does. An app that reports
``lifespan.startup.failed``, or raises once it was told to start, failed to start.
"""

from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional


class Lifespan:
    """One app's lifespan task. ``state`` is the dict every request scope gets a copy of
    (the spec's ``state`` key)."""

    def __init__(self, app: Callable, state: dict) -> None:
        self.app = app
        self.state = state
        self.task: Optional[asyncio.Task] = None
        self.inbox: "asyncio.Queue[dict]" = asyncio.Queue()
        self.answer: Optional[asyncio.Future] = None
        self.received = False  # the app called receive(): it speaks the protocol
        self.supported = True
        self.error: Optional[BaseException] = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
            if self.answer is not None and not self.answer.done():
                self.supported = False  # returned without an answer: it ignores lifespan (as `if scope["type"] != "http": return`)
        except BaseException as err:  # noqa: B036 - the app's failure is reported, not raised here
            self.error = err
            if not self.received:
                self.supported = False
        finally:
            answer = self.answer
            if answer is not None and not answer.done():
                answer.set_result(None)

    async def _receive(self) -> dict:
        self.received = True
        return await self.inbox.get()

    async def _send(self, message: dict) -> None:
        answer = self.answer
        if answer is not None and not answer.done():
            answer.set_result(message)

    async def _ask(self, kind: str) -> Optional[dict]:
        """Puts ``lifespan.<kind>`` and waits for the app's answer; None when the app ended without one."""
        loop = asyncio.get_running_loop()
        self.answer = loop.create_future()
        if self.task is None:
            self.task = loop.create_task(self._run())
        self.inbox.put_nowait({"type": "lifespan." + kind})
        return await self.answer

    async def startup(self) -> Optional[str]:
        """Runs the app's startup. None when it completed or the app does not speak the
        protocol (see ``supported``); else why it failed, for the one log line."""
        message = await self._ask("startup")
        if message is None:
            if not self.supported:
                return None
            err = self.error
            return "the app raised %s: %s" % (type(err).__name__, err)
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            return None
        if kind == "lifespan.startup.failed":
            return str(message.get("message") or "lifespan.startup.failed")
        return "unexpected message %r during startup" % kind

    async def shutdown(self) -> Optional[str]:
        """Runs the app's shutdown; None when it completed, else why not."""
        if not self.supported or self.task is None or self.task.done():
            return None
        message = await self._ask("shutdown")
        if message is None:
            err = self.error
            return "the app raised %s: %s" % (type(err).__name__, err) if err is not None else None
        kind = message.get("type")
        if kind == "lifespan.shutdown.failed":
            return str(message.get("message") or "lifespan.shutdown.failed")
        return None

