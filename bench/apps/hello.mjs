// The benchmark app: the smallest useful response.
export default function hello(req, res) {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '12' });
  res.end('Hello World\n');
}
