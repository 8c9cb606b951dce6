/**
 * The `node` flags every vassal master is started with, placed before its entry. The
 * workers' flags are the app's (`node-args`).
 *
 * Empty on purpose: a master's job is small and steady (a tick, a few IPC messages, a
 * stats document now and then), so Node's per-process reservations were measured for it
 * at 50 one-worker vassals (PSS per master, its CPU to ready, its idle CPU), and none of
 * `--max-semi-space-size=1`, `--single-threaded`, `--lite-mode`, `--no-flush-bytecode`
 * or a smaller `--v8-pool-size` changed PSS by more than the noise (9.7-10.1 MiB), while
 * `--lite-mode` and `--single-threaded` made start-up slower (about 340-360 ms of CPU per
 * master against 245 ms). Figures and method: docs/architecture.md, "Process start-up
 * and idle cost". A flag added here must show its gain the same way.
 */
export const MASTER_NODE_ARGS: readonly string[] = [];
