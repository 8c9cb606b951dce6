/**
 * Steady load on a few URLs (127.0.0.1 only): keep-alive clients in a loop until stopped,
 * counting answers and failures, the pids that answered, and the longest time no URL got
 * an answer (the longest gap, ms; reported, not asserted: tests do not time things).
 */
import http from 'node:http';

/** What a {@link steadyLoad} saw. */
export interface LoadCounts {
  ok: number;
  failed: string[];
  /** Per URL: the pids in the bodies ("pid N") of its answers. */
  readonly pids: Map<string, Set<number>>;
  /** Longest time between two answers to the same URL, ms. */
  longestGapMs: number;
}

/** A running load; `stop()` ends it (every client finishes its request) and returns the counts. */
export interface Load {
  readonly counts: LoadCounts;
  stop(): Promise<LoadCounts>;
}

/**
 * Starts `clientsPerUrl` keep-alive clients per URL, each sending GET requests one after
 * another until stopped. A request that fails (connection refused or reset, a status
 * other than 200, no answer in 10 s) is counted with its reason.
 */
export function steadyLoad(urls: readonly string[], clientsPerUrl = 2): Load {
  let stopped = false;
  const counts: LoadCounts = { ok: 0, failed: [], pids: new Map(urls.map((u) => [u, new Set<number>()])), longestGapMs: 0 };
  const agent = new http.Agent({ keepAlive: true, maxSockets: urls.length * clientsPerUrl });
  const lastAnswer = new Map<string, number>();
  const get = (url: string): Promise<void> =>
    new Promise((resolve) => {
      const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => {
          const now = performance.now();
          const last = lastAnswer.get(url);
          if (last !== undefined) counts.longestGapMs = Math.max(counts.longestGapMs, now - last);
          lastAnswer.set(url, now);
          if (res.statusCode === 200) {
            counts.ok++;
            const pid = /pid (\d+)/.exec(body)?.[1];
            if (pid !== undefined) counts.pids.get(url)?.add(Number(pid));
          } else counts.failed.push(`${url}: status ${res.statusCode}`);
          resolve();
        });
        res.on('error', (err) => {
          counts.failed.push(`${url}: ${err.message}`);
          resolve();
        });
      });
      req.on('timeout', () => req.destroy(new Error('no answer in 10 s')));
      req.on('error', (err) => {
        counts.failed.push(`${url}: ${err.message}`);
        resolve();
      });
    });
  const loop = async (url: string): Promise<void> => {
    while (!stopped) await get(url);
  };
  const running = urls.flatMap((url) => Array.from({ length: clientsPerUrl }, () => loop(url)));
  return {
    counts,
    async stop(): Promise<LoadCounts> {
      stopped = true;
      await Promise.all(running);
      agent.destroy();
      return counts;
    },
  };
}
