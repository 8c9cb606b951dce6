// A request that costs some CPU and then waits on I/O, like a typical app handler:
// /?cpu=MS&wait=MS (defaults 2 ms of CPU, 30 ms of waiting).
export default function mixed(req, res) {
  const url = new URL(req.url, 'http://x');
  const cpu = Number(url.searchParams.get('cpu') ?? '2');
  const wait = Number(url.searchParams.get('wait') ?? '30');
  const end = performance.now() + cpu;
  while (performance.now() < end) {
    // CPU work
  }
  setTimeout(() => res.end('ok\n'), wait);
}
