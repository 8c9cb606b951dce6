"""The optional C accelerator of the request path (``_speedups.c``), or None.

``scripts/build-python.mjs`` (run by ``npm run build``) compiles ``_speedups.c`` next to
this file for each Python it finds; where it could not (no C compiler, no Python.h), or
with ``EMPEROR_PY_SPEEDUPS=0`` in the environment, ``C`` is None and the worker runs the
pure-Python code the C functions mirror:

* ``accept_read(fd)``: accept4 and the first non-waiting read in one call
  (``server.Server.accept``);
* ``uwsgi_environ(packet, end)``: a uwsgi packet's variables as the environ
  (``protocols/uwsgi.py``, ``parse_vars`` and ``read_request``).

The worker says which path it uses: the ``speedups`` field of its "app loaded" line.
"""

from __future__ import annotations

import os
from typing import Any, Optional

C: Optional[Any] = None
#: Why ``C`` is None ("" when it is not).
WHY_NOT = ""

if os.environ.get("EMPEROR_PY_SPEEDUPS", "1").strip() == "0":
    WHY_NOT = "EMPEROR_PY_SPEEDUPS=0"
else:
    try:
        from . import _speedups as C  # type: ignore[no-redef]
    except ImportError as err:  # not built for this Python
        WHY_NOT = "not built for this Python (%s)" % err


def load_fields() -> dict:
    """What the worker's "app loaded" line says of the request path."""
    return {"speedups": C is not None} if C is not None else {"speedups": False, "speedups_off": WHY_NOT}
