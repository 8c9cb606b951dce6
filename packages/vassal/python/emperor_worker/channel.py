"""The IPC channel with the master: Node's, with ``serialization: 'json'`` (one JSON object per line)."""

from __future__ import annotations

import json
import os
import select
from typing import Optional


class Channel:
    """The channel on ``fd`` (``NODE_CHANNEL_FD``), non-blocking. Messages are the versioned
    union of packages/protocol/src/ipc.ts; Node's own (with ``cmd``) come through too."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.partial = b""
        os.set_blocking(fd, False)

    def send(self, message: dict) -> None:
        """Writes one message, waiting while the pipe is full; nothing when the master is gone."""
        data = (json.dumps(message, separators=(",", ":")) + "\n").encode()
        while data:
            try:
                data = data[os.write(self.fd, data):]
            except BlockingIOError:
                select.select([], [self.fd], [], 1.0)
            except OSError:
                return  # the master is gone; its death is noticed on the read side

    def read(self) -> Optional[list]:
        """Messages received (a line that is not JSON comes as its text); None at EOF (the master died)."""
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        except OSError:
            return None
        if not chunk:
            return None
        *lines, self.partial = (self.partial + chunk).split(b"\n")
        out = []
        for line in lines:
            if line.strip():
                try:
                    out.append(json.loads(line))
                except ValueError:
                    out.append(line.decode("utf-8", "replace"))
        return out
