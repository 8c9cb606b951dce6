// Node's cluster module with 2 workers (default scheduling: round-robin on Linux).
const cluster = require('node:cluster');
if (cluster.isPrimary) {
  for (let i = 0; i < 2; i++) cluster.fork();
} else {
  require('./hello-listen.cjs');
}
