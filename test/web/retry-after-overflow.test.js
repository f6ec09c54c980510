// A Retry-After longer than setTimeout can hold (2^31-1 ms, about 24.8 days) must not turn into an
// immediate retry: Node and browsers fire such a timer after 1 ms, so a client told to go away for
// a month would hammer the server about a thousand times a second, in lockstep with every other
// client told the same. retryAfterDelay returns the raw milliseconds and #schedule hands them to
// setTimeout unchecked.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import WebSocket from 'ws';
import { WsgateClient } from '../../cmd/wsgate/web/js/wsgate.js';

test('a Retry-After beyond setTimeout range does not make the client retry at once', async () => {
  let attempts = 0;
  const srv = http.createServer((_req, res) => { res.statusCode = 404; res.end(); });
  srv.on('upgrade', (_req, socket) => {
    attempts++;
    // 2,147,484 s = 2,147,484,000 ms: just past the largest timer delay (2,147,483,647 ms).
    socket.end('HTTP/1.1 503 Service Unavailable\r\nRetry-After: 2147484\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
  await new Promise((resolve) => srv.listen(0, '127.0.0.1', () => resolve(undefined)));
  const port = /** @type {import('node:net').AddressInfo} */ (srv.address()).port;
  /** @type {string[]} */ const warnings = [];
  const onWarning = (/** @type {Error} */ w) => warnings.push(w.name);
  process.on('warning', onWarning);
  const client = new WsgateClient(`ws://127.0.0.1:${port}/ws`, { WebSocket, minDelay: 50, maxDelay: 200 });
  try {
    client.connect();
    await new Promise((resolve) => setTimeout(resolve, 1000));
  } finally {
    client.close();
    process.off('warning', onWarning);
    await new Promise((resolve) => srv.close(() => resolve(undefined)));
  }
  assert.ok(attempts <= 1,
    `${attempts} handshakes in 1 s after the server said Retry-After: 2147484 (${warnings.length} TimeoutOverflowWarnings): ` +
    'the delay overflowed setTimeout and the client retried at once');
});
