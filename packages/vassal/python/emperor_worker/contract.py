"""Values the worker shares with the TypeScript side.

GENERATED from packages/protocol/src/contract.ts and ipc.ts by `npm run docs`; do not edit.
A unit test (test/unit/protocol/contract.test.ts) fails while this file is stale.
"""

# Exit codes (packages/protocol/src/ipc.ts ExitCode).
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78
EXIT_APP_LOAD = 22
EXIT_UNAVAILABLE = 69

SPEC_VERSION = 2
IPC_VERSION = 1

# The scoreboard slot: a struct format and its fields in order.
SLOT_SIZE = 1024
SLOT_FORMAT = "<IIBB2xIdddddddddI4xHH16s900s4xI"
SLOT_FIELDS = ("seq", "pid", "status", "flags", "inFlight", "heartbeatMs", "requests", "exceptions", "txBytes", "runningTimeUs", "avgRtUs", "requestStartMs", "harakiriCount", "lastRequestEndMs", "websockets", "methodLength", "uriLength", "method", "uri", "seqEnd",)
METHOD_MAX = 16
URI_MAX = 900
# The slot's status byte.
EMPTY = 0
STARTING = 1
IDLE = 2
BUSY = 3
STOPPING = 4

# uWSGI's default request line; {unit} is msecs, or micros with log-micros.
DEFAULT_REQUEST_LINE = "[pid: %d|app: 0|req: %d/%d] %s (%s) {%d vars in %d bytes} [%s] %s %s => generated %d bytes in %d {unit} (%s %d) %d headers in %d bytes (1 switches on core 0)\n"
