// The same app as a standalone server (for cluster and PM2), port from PORT.
const http = require('node:http');
http
  .createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '12' });
    res.end('Hello World\n');
  })
  .listen(Number(process.env.PORT), '127.0.0.1');
