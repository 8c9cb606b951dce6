"""The worker's own log lines, in the style the master pinned (``EMPEROR_LOG_STYLE``): JSON in
pino's shape, or the text line of the Node tiers (packages/process/src/logger.ts)."""

from __future__ import annotations

import json
import os
import re
import time
import traceback
from typing import Optional


def exc_text(exc: BaseException) -> str:
    """``str(exc)``, or ``<exception str() failed>`` (the traceback module's words) when the
    exception's ``__str__`` raises: a log line about an app's exception must not fail."""
    try:
        return str(exc)
    except Exception:
        return "<exception str() failed>"


class Log:
    """Event lines on stderr, in the style the master pinned (``EMPEROR_LOG_STYLE``).

    ``json``: pino's shape, so they interleave with the Node tiers' logs. Levels are
    pino's: 30 info, 40 warn, 50 error, 60 fatal. An exception goes into an ``err`` object
    with ``type``, ``message`` and ``stack`` (pino's err serializer). ``text``: the line
    ``formatTextLine`` of packages/process/src/logger.ts writes, byte for byte (a unit test
    compares them); without the variable, text on a terminal, else JSON.
    """

    NAMES = {10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL"}
    HEAD = ("level", "time", "pid", "msg", "role", "vassal", "worker", "err")
    BARE = re.compile(r'[^ "|=\\\x00-\x1f\x7f]+')
    CONTROL = re.compile(r"[\x00-\x1f\x7f]")

    def __init__(self, bindings: dict) -> None:
        self.bindings = bindings
        style = os.environ.get("EMPEROR_LOG_STYLE")
        self.text = style == "text" or (style != "json" and os.isatty(2))

    @classmethod
    def _escape(cls, text: str) -> str:
        named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
        return cls.CONTROL.sub(lambda m: named.get(m.group(0), "\\x%02x" % ord(m.group(0))), text)

    @classmethod
    def _value(cls, value) -> str:
        if isinstance(value, str):
            return value if cls.BARE.fullmatch(value) else json.dumps(value, ensure_ascii=False)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)

    @classmethod
    def format_text(cls, record: dict) -> str:
        """One event as a text line, with its newline (see formatTextLine in logger.ts)."""
        t = record.get("time", 0)
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t / 1000)) + ".%03d" % (t % 1000)
        head = "[pid: %s" % record.get("pid", "?")
        if "role" in record:
            head += "|%s" % record["role"]
        if "vassal" in record:
            head += "|vassal: %s" % cls._escape(str(record["vassal"]))
        if "worker" in record:
            head += "|worker: %s" % record["worker"]
        level = record.get("level")
        line = "%s %s %s] %s" % (when, cls.NAMES.get(level, str(level)), head, cls._escape(str(record.get("msg", ""))))
        fields = ["%s=%s" % (k, cls._value(v)) for k, v in record.items() if k not in cls.HEAD]
        stack = ""
        err = record.get("err")
        if isinstance(err, dict):
            fields.append("err=%s" % cls._value("%s: %s" % (err.get("type", "Error"), err.get("message", ""))))
            if err.get("stack"):
                stack = "".join("\n    " + cls._escape(l) for l in str(err["stack"]).split("\n"))
        elif err is not None:
            fields.append("err=%s" % cls._value(err))
        if fields:
            line += " | " + " ".join(fields)
        return line + stack + "\n"

    def write(self, level: int, msg: str, fields: Optional[dict] = None, exc: Optional[BaseException] = None) -> None:
        record: dict = {"level": level, "time": int(time.time() * 1000), "pid": os.getpid()}
        record.update(self.bindings)
        if fields:
            record.update(fields)
        if exc is not None:
            record["err"] = {
                "type": type(exc).__name__,
                "message": exc_text(exc),
                "stack": "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip("\n"),
            }
        record["msg"] = msg
        if self.text:
            line = self.format_text(record)
        else:
            line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        data = line.encode("utf-8", "replace")
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
