// Runs wrk on 127.0.0.1 for a fixed duration and parses its report.
import { execFile } from 'node:child_process';
import { debianTool } from './peers.mjs';

/**
 * `errors` counts every socket error and non-2xx/3xx answer; `socketErrors` splits the
 * socket errors (a server that closes after each response shows as `read` errors).
 * @returns {Promise<{ rps: number, p50Ms: number, p99Ms: number, errors: number, requests: number,
 *   non2xx: number, socketErrors: { connect: number, read: number, write: number, timeout: number } }>}
 */
export function wrk(url, { threads = 2, connections = 50, seconds = 8, headers = [] } = {}) {
  const bin = debianTool('wrk');
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', ...headers.flatMap((h) => ['-H', h]), url];
  return new Promise((resolve, reject) => {
    execFile(bin, args, { timeout: (seconds + 30) * 1000 }, (err, stdout) => {
      if (err) return reject(err);
      const num = (re) => Number(re.exec(stdout)?.[1] ?? NaN);
      const lat = (pct) => {
        const m = new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s)`, 'm').exec(stdout);
        if (!m) return NaN;
        return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
      };
      const errLine = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(stdout);
      const non2xx = num(/Non-2xx or 3xx responses: (\d+)/);
      const errors = (errLine ? errLine.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (Number.isNaN(non2xx) ? 0 : non2xx);
      const [connect, read, write, timeout] = errLine ? errLine.slice(1).map(Number) : [0, 0, 0, 0];
      resolve({
        rps: num(/Requests\/sec:\s+([\d.]+)/), p50Ms: lat(50), p99Ms: lat(99), errors, requests: num(/(\d+) requests in/),
        non2xx: Number.isNaN(non2xx) ? 0 : non2xx, socketErrors: { connect, read, write, timeout },
      });
    });
  });
}
