/**
 * Telling `systemctl stop` from `systemctl restart` (issue 19). Both send the unit's
 * KillSignal (SIGTERM) to the emperor; a stop must stop every vassal gracefully, a
 * restart must hand them over to the emperor systemd starts next. systemd runs a restart
 * as one job of type `restart` whose stop half is what sends SIGTERM; the job becomes a
 * `start` only once the stop half is done (src/core/job.c). So on SIGTERM the emperor
 * asks `systemctl list-jobs` whether its own unit has a `restart` job running.
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { findExecutable } from '@emperor/process';

/** How long `systemctl list-jobs` may take before the SIGTERM counts as a stop, ms. */
export const LIST_JOBS_TIMEOUT_MS = 2000;

/**
 * The systemd unit a process runs in, from its /proc/PID/cgroup text: the last path
 * component naming a service (`0::/system.slice/emperor.service` → `emperor.service`).
 */
export function unitOfCgroup(text: string): string | undefined {
  for (const line of text.split('\n')) {
    const path = line.split(':').slice(2).join(':');
    const unit = path.split('/').reverse().find((part) => part.endsWith('.service'));
    if (unit !== undefined) return unit;
  }
  return undefined;
}

/**
 * True when `systemctl list-jobs --no-legend --plain` output (`ID UNIT TYPE STATE` per
 * line) has a `restart` job for `unit`.
 */
export function restartPending(listJobs: string, unit: string): boolean {
  return listJobs.split('\n').some((line) => {
    const [, name, type] = line.trim().split(/\s+/);
    return name === unit && type === 'restart';
  });
}

/**
 * Whether the SIGTERM this emperor got is systemd restarting its unit. False when not
 * under systemd (no `INVOCATION_ID` or `NOTIFY_SOCKET`), when the unit is unknown, when
 * `systemctl` is missing, fails or is slow: a stop is the safe reading.
 * The unit is `EMPEROR_SYSTEMD_UNIT` when set (a container whose /proc/self/cgroup does
 * not show it), else found in /proc/self/cgroup.
 */
export async function systemdRestartPending(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (env.INVOCATION_ID === undefined && env.NOTIFY_SOCKET === undefined) return false;
  let unit = env.EMPEROR_SYSTEMD_UNIT;
  if (unit === undefined) {
    try {
      unit = unitOfCgroup(readFileSync('/proc/self/cgroup', 'utf8'));
    } catch {
      return false;
    }
  }
  const systemctl = findExecutable('systemctl', env.PATH);
  if (unit === undefined || systemctl === undefined) return false;
  return new Promise((resolve) => {
    execFile(systemctl, ['list-jobs', '--no-legend', '--plain'], { timeout: LIST_JOBS_TIMEOUT_MS, env }, (err, stdout) => {
      resolve(err === null && restartPending(String(stdout), unit));
    });
  });
}
