"""Values the worker shares with the TypeScript side; change them together.

* exit codes: packages/protocol/src/ipc.ts ``ExitCode``;
* the worker spec's version: packages/vassal/src/shared/worker-spec.ts;
* the IPC messages' version: packages/protocol/src/ipc.ts.

The scoreboard slot's layout is in ``scoreboard.py``, the request log's default line in
``request_log.py``, each beside the code that writes it.
"""

EXIT_OK = 0
#: The app could not be loaded (and anything else wrong before it could be).
EXIT_APP_LOAD = 22
#: A socket could not be had (listen() failed).
EXIT_UNAVAILABLE = 69

SPEC_VERSION = 1
IPC_VERSION = 1
