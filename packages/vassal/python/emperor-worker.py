"""Starts one Emperor Python worker (the ``emperor_worker`` package beside this file).

The vassal master runs ``python3 -u emperor-worker.py vassal=NAME worker=N``. Python puts
this file's directory first on ``sys.path``; it holds only this launcher (whose name,
with its hyphen, cannot be imported) and the package, and the worker takes it off
``sys.path`` before the app loads, so none of the package's module names can shadow the
app's imports or the standard library's.
"""

import sys

if sys.version_info < (3, 9):
    sys.stderr.write("Emperor's Python worker needs Python 3.9 or newer, not %s\n" % sys.version.split()[0])
    sys.exit(22)

from emperor_worker.worker import main  # noqa: E402

main()
