"""The worker's own log lines: JSON on stderr in pino's shape, as the Node tiers write them."""

from __future__ import annotations

import json
import os
import time
import traceback
from typing import Optional


class Log:
    """JSON lines on stderr in pino's shape, so they interleave with the Node tiers' logs.

    Levels are pino's: 30 info, 40 warn, 50 error, 60 fatal. An exception goes into an
    ``err`` object with ``type``, ``message`` and ``stack`` (pino's err serializer). With
    ``EMPEROR_LOG_PRETTY=1``, or stderr a terminal and it not ``0``, lines are formatted
    like pino-pretty's single-line mode instead. ``bindings`` go into every line.
    """

    NAMES = {30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL"}

    def __init__(self, bindings: dict) -> None:
        self.bindings = bindings
        flag = os.environ.get("EMPEROR_LOG_PRETTY")
        self.pretty = flag == "1" or (flag != "0" and os.isatty(2))

    def write(self, level: int, msg: str, fields: Optional[dict] = None, exc: Optional[BaseException] = None) -> None:
        record: dict = {"level": level, "time": int(time.time() * 1000), "pid": os.getpid()}
        record.update(self.bindings)
        if fields:
            record.update(fields)
        if exc is not None:
            record["err"] = {
                "type": type(exc).__name__,
                "message": str(exc),
                "stack": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip("\n"),
            }
        record["msg"] = msg
        if self.pretty:
            t = time.localtime(record["time"] / 1000)
            extra = {k: v for k, v in record.items() if k not in ("level", "time", "pid", "msg")}
            line = "[%s.%03d] %s (%d): %s %s" % (
                time.strftime("%H:%M:%S", t), record["time"] % 1000, self.NAMES.get(level, str(level)),
                record["pid"], msg, json.dumps(extra, ensure_ascii=False, separators=(",", ":"), default=str),
            )
        else:
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str)
        data = (line + "\n").encode("utf-8", "replace")
        try:
            while data:
                data = data[os.write(2, data):]
        except OSError:
            pass

    def info(self, msg: str, fields: Optional[dict] = None) -> None:
        self.write(30, msg, fields)

    def warn(self, msg: str, fields: Optional[dict] = None) -> None:
        self.write(40, msg, fields)

    def error(self, msg: str, fields: Optional[dict] = None, exc: Optional[BaseException] = None) -> None:
        self.write(50, msg, fields, exc)
