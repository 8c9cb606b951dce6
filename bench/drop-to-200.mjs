// Time from dropping a vassal file into the emperor's directory to its first HTTP 200.
import { unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EMPEROR_BIN, ROOT, freePort, get200, median, percentile, record, start, table, tempDir, waitFor, ms } from './lib.mjs';

export async function dropTo200({ drops = 10 } = {}) {
  const dir = tempDir();
  const app = join(ROOT, 'examples', 'node-hello', 'app.mjs');
  const emperor = start(process.execPath, [EMPEROR_BIN, '--emperor', dir], { env: { ...process.env, EMPEROR_LOG_LEVEL: 'warn' } });
  await waitFor(() => true);
  const times = [];
  for (let i = 0; i < drops; i++) {
    const port = await freePort();
    const file = join(dir, `drop${i}.ini`);
    const t0 = performance.now();
    writeFileSync(file, `[uwsgi]\nhttp-socket = 127.0.0.1:${port}\nmodule = ${app}\nprocesses = 1\n`);
    await waitFor(() => get200(`http://127.0.0.1:${port}/`), 30_000, 2);
    times.push(performance.now() - t0);
    unlinkSync(file);
  }
  void emperor;
  return times;
}

export async function run() {
  const times = await dropTo200();
  record('drop-to-200', times);
  table('Drop a vassal file → first 200 (emperor on a directory, 1 Node worker)', ['runs', 'median', 'p95', 'min', 'max'], [
    [times.length, ms(median(times)), ms(percentile(times, 95)), ms(Math.min(...times)), ms(Math.max(...times))],
  ]);
}
