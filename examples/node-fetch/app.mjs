// A web-standard app: an object with fetch(Request) -> Response, the shape Hono,
// itty-router and Bun/Deno handlers export.
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (request.method === 'POST') {
      const body = await request.text();
      return Response.json({ echo: body, length: body.length });
    }
    return new Response(`fetch app in pid ${process.pid}: ${url.pathname}\n`, {
      headers: { 'content-type': 'text/plain; charset=utf-8' },
    });
  },
};
