/**
 * The ceiling of this machine for the decision benchmark (started by run.ts): a plain `node:http`
 * server that reads each request's body and answers a small fixed JSON decision. It is sent the
 * same requests as the decision API, so the difference is what Gatehouse does per request.
 */

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { send, serveParent } from './protocol.js';

const BODY = Buffer.from(JSON.stringify({ decision: true, context: { revision: 1 } }));

const server = createServer((request, response) => {
  if (request.method !== 'POST') {
    response.writeHead(405, { 'content-length': 0 });
    response.end();
    return;
  }
  request.on('data', () => undefined);
  request.on('end', () => {
    response.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': BODY.length });
    response.end(BODY);
  });
});

server.listen(0, '127.0.0.1', () => {
  serveParent(
    () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  );
  void send({ type: 'ready', port: (server.address() as AddressInfo).port });
});
