"""``python3 -m emperor_worker``: the worker, as the launcher (``emperor-worker.py``) starts it."""

import sys

if sys.version_info < (3, 9):
    sys.stderr.write("Emperor's Python worker needs Python 3.9 or newer, not %s\n" % sys.version.split()[0])
    sys.exit(22)

from emperor_worker.worker import main  # noqa: E402

main()
