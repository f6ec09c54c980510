// The browser client against a server that sheds handshakes (wsgate serve -max-handshake-rate):
// in Node with the ws package, which shows the refusal's 503 and Retry-After; in Node with a
// WebSocket that hides them, as browsers do, so that the client probes; and in headless Chromium.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { WsgateClient, retryAfterDelay } from '../../cmd/wsgate/web/js/wsgate.js';
import { startWsgate, stopAll, nextEvent } from './server.js';
import { launchChromium, openPage } from './chromium.js';

/** @type {Set<WsgateClient>} */
const clients = new Set();
after(async () => {
  clients.forEach((c) => c.close());
  await stopAll();
});

/**
 * A client that the file's after hook closes, with a fast backoff.
 * @param {string} url
 * @param {import('../../cmd/wsgate/web/js/wsgate.js').WsgateClientOptions} options
 */
function newClient(url, options) {
  const client = new WsgateClient(url, { minDelay: 50, maxDelay: 200, ...options });
  clients.add(client);
  return client;
}

/**
 * Node's ws seen through the WebSocket API alone, as a browser's: a refused handshake is an error
 * and a close with 1006, its status and headers hidden.
 */
class HiddenStatusWebSocket {
  /** @param {string} url @param {string | string[]} [protocols] */
  constructor(url, protocols) {
    this.ws = new WebSocket(url, protocols);
  }
  get readyState() { return this.ws.readyState; }
  get protocol() { return this.ws.protocol; }
  get binaryType() { return this.ws.binaryType; }
  set binaryType(v) { this.ws.binaryType = /** @type {any} */ (v); }
  /** @param {any} data */
  send(data) { this.ws.send(data); }
  /** @param {number} [code] @param {string} [reason] */
  close(code, reason) { this.ws.close(code, reason); }
  /** @param {string} type @param {(ev: any) => void} listener */
  addEventListener(type, listener) { this.ws.addEventListener(/** @type {any} */ (type), listener); }
}

/**
 * Connects a first client, which takes the one handshake a second of srv, and returns it open.
 * @param {import('./server.js').Wsgate} srv
 */
async function takeTheToken(srv) {
  const first = newClient(srv.url, { WebSocket });
  const opened = nextEvent(first, 'open');
  first.connect();
  await opened;
  return first;
}

test('retryAfterDelay: seconds or an HTTP date, plus a jitter under a second; -1 for anything else', () => {
  assert.equal(retryAfterDelay('3', () => 0), 3000);
  assert.equal(retryAfterDelay('3', () => 0.9999999), 3999);
  assert.equal(retryAfterDelay(' 0 ', () => 0.5), 500);
  const now = Date.parse('Thu, 01 Jan 2026 12:00:00 GMT');
  assert.equal(retryAfterDelay('Thu, 01 Jan 2026 12:00:07 GMT', () => 0, now), 7000);
  assert.equal(retryAfterDelay('Thu, 01 Jan 2026 11:00:00 GMT', () => 0, now), 0);
  for (const v of [null, undefined, '', '-1', '1.5', 'soon']) {
    assert.equal(retryAfterDelay(v, () => 0), -1, `retryAfterDelay(${JSON.stringify(v)})`);
  }
});

test('Node ws: a 503 with Retry-After sets the wait (plus jitter) instead of the backoff, and the client then gets in', async () => {
  const srv = await startWsgate(['-max-handshake-rate', '1']);
  await takeTheToken(srv);
  const client = newClient(srv.url, { WebSocket, random: () => 0 });
  const closed = nextEvent(client, 'close');
  const reconnecting = nextEvent(client, 'reconnecting');
  const opened = nextEvent(client, 'open');
  const t0 = Date.now();
  client.connect();
  const ev = /** @type {any} */ (await closed);
  assert.equal(ev.status, 503, 'the close event carries the refusal\'s status');
  assert.equal(ev.code, 1006);
  const delay = /** @type {any} */ (await reconnecting).delay;
  assert.ok(delay >= 1000 && delay % 1000 === 0, `reconnect delay ${delay} ms: want Retry-After's whole seconds (random 0: no jitter), not the 50-200 ms backoff`);
  await opened;
  assert.ok(Date.now() - t0 >= delay, 'opened only after the wait');
});

test('status hidden (as in a browser): the client probes the URL with HEAD, waits Retry-After, then gets in', async () => {
  const srv = await startWsgate(['-max-handshake-rate', '1']);
  await takeTheToken(srv);
  const client = newClient(srv.url, { WebSocket: /** @type {any} */ (HiddenStatusWebSocket) });
  const closed = nextEvent(client, 'close');
  const reconnecting = nextEvent(client, 'reconnecting');
  const opened = nextEvent(client, 'open');
  client.connect();
  assert.equal(/** @type {any} */ (await closed).status, 0, 'the status is hidden');
  const delay = /** @type {any} */ (await reconnecting).delay;
  assert.ok(delay >= 1000, `reconnect delay ${delay} ms: want the probe's Retry-After, not the 50-200 ms backoff`);
  await opened;
});

test('status hidden, nothing to learn (no server, or a server that does not shed): the usual backoff', async () => {
  const srv = await startWsgate(['-max-handshake-rate', '1']);
  await srv.stop();
  const client = newClient(srv.url, { WebSocket: /** @type {any} */ (HiddenStatusWebSocket) });
  const reconnecting = nextEvent(client, 'reconnecting');
  client.connect();
  const delay = /** @type {any} */ (await reconnecting).delay;
  assert.ok(delay < 200, `reconnect delay ${delay} ms: want the backoff (under maxDelay 200)`);
  // A probe the page must not make: options.probe false goes straight to the backoff.
  const quiet = newClient(srv.url, { WebSocket: /** @type {any} */ (HiddenStatusWebSocket), probe: false });
  const next = nextEvent(quiet, 'reconnecting');
  quiet.connect();
  assert.ok(/** @type {any} */ (await next).delay < 200);
});

test('Chromium: clients refused by a shedding server probe, wait Retry-After, and all get in, spread over the seconds', async (t) => {
  const srv = await startWsgate(['-max-handshake-rate', '2']);
  const browser = await launchChromium();
  t.after(() => browser.close());
  // A page of the server without a WebSocket of its own: the module's URL.
  const page = await openPage(browser.context, t, `${srv.pageURL}js/wsgate.js`);
  const result = await page.evaluate(async (url) => {
    const { WsgateClient } = await import('/js/wsgate.js');
    const n = 6;
    const t0 = performance.now();
    /** @type {number[]} */
    const delays = [];
    /** @type {number[]} */
    const openedAt = [];
    const clients = Array.from({ length: n }, () => new WsgateClient(url, { minDelay: 50, maxDelay: 100 }));
    await Promise.all(clients.map((c) => new Promise((resolve) => {
      c.on('reconnecting', (ev) => delays.push(ev.delay));
      c.on('open', () => { openedAt.push(performance.now() - t0); resolve(undefined); });
      c.connect();
    })));
    clients.forEach((c) => c.close());
    return { delays, openedAt: openedAt.sort((a, b) => a - b) };
  }, srv.url);
  // Two get in at once (the burst); the probes of the four others are told 1 or 2 s, never the
  // 50-100 ms backoff. (One refused later may probe just as a token comes, and back off.)
  assert.equal(result.openedAt.length, 6);
  assert.ok(result.delays.filter((d) => d >= 1000).length >= 4, `reconnect delays ${result.delays}: want each first refusal to wait a probe's Retry-After`);
  assert.ok(result.openedAt[5] >= 1500, `the last client got in after ${result.openedAt[5]} ms: at 2/s six cannot be in before 2 s`);
});
