// A request listener: what http.createServer() takes (Express apps have this shape too).
// The emperor's workers serve it on the vassal's sockets.
export default function hello(req, res) {
  res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
  res.end(`Hello from worker pid ${process.pid}: ${req.method} ${req.url}\n`);
}
