/**
 * `emperor upgrade`: asks the running emperor, on its control socket, to start anew (the
 * build now installed, its configuration read again) and hand every vassal over to the
 * new process (issue 19; the emperor's side is packages/emperor/src/upgrade.ts). Prints
 * the new emperor's pid. systemd's `ExecReload=` runs it (docs/systemd.md).
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { ADMIN_KEY_FILE, CONTROL_VERSION, ExitCode, UpgradeError, parseAdminReply } from '@emperor/protocol';
import { JsonLines } from '@emperor/process';

/** How long the emperor may take to start its successor and answer, ms (its own limit is 30 s). */
export const UPGRADE_ANSWER_MS = 45_000;

/** Where `emperor upgrade` talks: `--runtime-dir`, else `$RUNTIME_DIRECTORY` (its first entry). */
export function upgradeRuntimeDir(flag: string | undefined, env: NodeJS.ProcessEnv): string | undefined {
  return flag ?? (env.RUNTIME_DIRECTORY?.split(':')[0] || undefined);
}

/**
 * Runs the upgrade against the emperor whose runtime directory is `runtimeDir`.
 * Resolves to {@link ExitCode.OK} once the new emperor listens (the old one then exits),
 * {@link ExitCode.FAILURE} with one line on `err` otherwise.
 */
export async function runUpgrade(runtimeDir: string | undefined, out: NodeJS.WritableStream, err: NodeJS.WritableStream): Promise<ExitCode> {
  const fail = (e: UpgradeError): ExitCode => {
    err.write(`emperor upgrade: ${e.message}\n`);
    return ExitCode.FAILURE;
  };
  if (runtimeDir === undefined) return fail(new UpgradeError('no runtime directory: give --runtime-dir (the emperor\'s emperor-runtime-dir), or run it where $RUNTIME_DIRECTORY is set (systemd ExecReload=)'));
  let key: string;
  try {
    key = readFileSync(join(runtimeDir, ADMIN_KEY_FILE), 'utf8').trim();
  } catch (e) {
    return fail(new UpgradeError(`cannot read ${join(runtimeDir, ADMIN_KEY_FILE)}: ${(e as Error).message} (run this as the emperor's user, on an emperor with handover)`));
  }
  const path = join(runtimeDir, 'control.sock');
  const reply = await new Promise<unknown>((resolve) => {
    const channel = new JsonLines(net.createConnection(path));
    const timer = setTimeout(() => channel.close(`no answer within ${UPGRADE_ANSWER_MS / 1000} s`), UPGRADE_ANSWER_MS);
    channel.socket.once('connect', () => channel.send({ v: CONTROL_VERSION, type: 'upgrade', key }));
    channel.once('message', (message) => {
      clearTimeout(timer);
      resolve(message);
      channel.close();
    });
    channel.once('close', (reason) => {
      clearTimeout(timer);
      resolve(new UpgradeError(`${path}: ${reason}`));
    });
  });
  if (reply instanceof UpgradeError) return fail(reply);
  try {
    const answer = parseAdminReply(reply);
    if (answer.type === 'refused') return fail(new UpgradeError(`refused: ${answer.reason}`));
    out.write(`emperor upgraded: the new emperor is pid ${answer.pid}; the vassals are handed over to it\n`);
    return ExitCode.OK;
  } catch (e) {
    return fail(new UpgradeError((e as Error).message));
  }
}
