// An unmodified app that starts its own server, as most Node apps do. Under the emperor
// its listen() is redirected to the vassal's sockets, so every worker serves it; run
// directly with `node server.cjs` it listens on port 3000 as usual.
const http = require('node:http');

const server = http.createServer((req, res) => {
  if (req.url === '/health') {
    res.writeHead(204);
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ app: 'node-server', pid: process.pid, url: req.url }) + '\n');
});

server.listen(process.env.PORT || 3000, () => {
  console.log(`node-server listening on ${JSON.stringify(server.address())}`);
});
