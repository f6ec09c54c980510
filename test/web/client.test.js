// Unit tests of the browser client (/js/wsgate.js) in Node, against a real wsgate process, with the
// ws package as the WebSocket implementation.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import {
  WsgateClient, backoffDelay, shouldReconnect, RECONNECT_CODES, CloseCode, defaults,
  OutboxFullError, ClosedError,
} from '../../cmd/wsgate/web/js/wsgate.js';
import { startWsgate, stopAll, nextEvent, waitUntil } from './server.js';

/** @type {Set<WsgateClient>} */
const clients = new Set();
after(async () => {
  clients.forEach((c) => c.close()); // no reconnect timer outlives a failed test
  await stopAll();
});

/**
 * A client that the file's after hook closes.
 * @param {string} url
 * @param {import('../../cmd/wsgate/web/js/wsgate.js').WsgateClientOptions} options
 */
function newClient(url, options) {
  const client = new WsgateClient(url, options);
  clients.add(client);
  return client;
}

/** Counts the sockets the client creates. */
class CountingWebSocket extends WebSocket {
  static created = 0;
  /** @param {ConstructorParameters<typeof WebSocket>} args */
  constructor(...args) {
    super(...args);
    CountingWebSocket.created++;
  }
}

/** A WebSocket whose server side the test scripts: it opens on the next tick and closes when told. */
class ScriptedWebSocket extends EventTarget {
  /** @type {ScriptedWebSocket[]} */
  static sockets = [];
  readyState = 0;
  binaryType = 'blob';
  constructor() {
    super();
    ScriptedWebSocket.sockets.push(this);
    setTimeout(() => {
      this.readyState = 1;
      this.dispatchEvent(new Event('open'));
    }, 0);
  }
  send() {}
  /** @param {number} [code] @param {string} [reason] */
  close(code = 1005, reason = '') {
    this.serverClose(code, reason);
  }
  /** @param {number} code @param {string} reason */
  serverClose(code, reason) {
    this.readyState = 3;
    this.dispatchEvent(Object.assign(new Event('close'), { code, reason, wasClean: true }));
  }
}

/**
 * Every event the client dispatches, in order.
 * @param {WsgateClient} client
 * @returns {any[]}
 */
function record(client) {
  /** @type {any[]} */
  const events = [];
  for (const type of ['open', 'message', 'close', 'error', 'reconnecting', 'state']) {
    client.addEventListener(type, (ev) => events.push(ev));
  }
  return events;
}

/** @param {any[]} events @param {string} type */
const ofType = (events, type) => events.filter((ev) => ev.type === type);

/**
 * A client connected to url, with fast reconnects unless options say otherwise.
 * @param {string} url
 * @param {import('../../cmd/wsgate/web/js/wsgate.js').WsgateClientOptions} [options]
 */
async function openClient(url, options = {}) {
  const client = newClient(url, { WebSocket, minDelay: 50, maxDelay: 200, ...options });
  const opened = nextEvent(client, 'open');
  client.connect();
  await opened;
  return client;
}

/**
 * Sends data and resolves with the reply.
 * @param {WsgateClient} client
 * @param {string | ArrayBuffer | ArrayBufferView} data
 * @returns {Promise<import('../../cmd/wsgate/web/js/wsgate.js').WsgateMessageEvent>}
 */
async function roundTrip(client, data) {
  const reply = nextEvent(client, 'message');
  client.send(data);
  return /** @type {any} */ (await reply);
}

const enc = new TextEncoder();

/** A URL where nothing listens: the port of a server that was started and stopped. */
async function deadURL() {
  const srv = await startWsgate();
  await srv.stop();
  return srv.url;
}

test('echoes text as text and binary as binary', async () => {
  const srv = await startWsgate();
  const client = await openClient(srv.url);
  assert.equal(client.state, 'open');
  assert.equal(client.url, srv.url);

  let ev = await roundTrip(client, 'Hello!');
  assert.deepEqual([ev.data, ev.binary], ['Hello! done', false]);
  ev = await roundTrip(client, '你好 🌍');
  assert.equal(ev.data, '你好 🌍 done');

  const bytes = new Uint8Array([0, 1, 2, 255]);
  const want = [...bytes, ...enc.encode(' done')];
  ev = await roundTrip(client, bytes);
  assert.equal(ev.binary, true);
  assert.ok(ev.data instanceof ArrayBuffer);
  assert.deepEqual([...new Uint8Array(/** @type {ArrayBuffer} */ (ev.data))], want);
  ev = await roundTrip(client, bytes.buffer);
  assert.deepEqual([...new Uint8Array(/** @type {ArrayBuffer} */ (ev.data))], want);
  ev = await roundTrip(client, new DataView(bytes.buffer, 1, 2));
  assert.deepEqual([...new Uint8Array(/** @type {ArrayBuffer} */ (ev.data))], [1, 2, ...enc.encode(' done')]);

  const closed = nextEvent(client, 'close');
  client.close();
  const c = /** @type {any} */ (await closed);
  assert.deepEqual([c.code, c.wasClean, c.willReconnect], [1000, true, false]);
});

test('close(code, reason) is answered with the same code, stops the client, and connect() restarts it', async () => {
  const srv = await startWsgate();
  const client = await openClient(srv.url);
  const events = record(client);
  const closed = nextEvent(client, 'close');
  client.close(4000, 'bye');
  assert.equal(client.state, 'closing');
  client.close(4001, 'again'); // idempotent
  const ev = /** @type {any} */ (await closed);
  // The code is the server's answer, which echoes ours (its reason is its own).
  assert.deepEqual([ev.code, ev.wasClean, ev.willReconnect, ev.unsent], [4000, true, false, []]);
  assert.equal(client.state, 'closed');
  assert.throws(() => client.send('late'), ClosedError);
  assert.deepEqual(ofType(events, 'state').map((e) => e.state), ['closing', 'closed']);

  const opened = nextEvent(client, 'open');
  client.connect();
  assert.equal(/** @type {any} */ (await opened).reconnected, false);
  assert.equal((await roundTrip(client, 'again')).data, 'again done');
  client.close();
});

test('messages sent while connecting wait in the outbox and go first, in order', async () => {
  const srv = await startWsgate();
  const client = newClient(srv.url, { WebSocket });
  const events = record(client);
  client.connect();
  assert.equal(client.state, 'connecting');
  assert.deepEqual(['a', 'b', 'c'].map((m) => client.send(m)), ['queued', 'queued', 'queued']);
  assert.deepEqual(client.outbox, { messages: 3, bytes: 3 });
  const opened = /** @type {any} */ (await nextEvent(client, 'open'));
  assert.equal(opened.flushed, 3);
  assert.deepEqual(client.outbox, { messages: 0, bytes: 0 });
  assert.equal(client.send('d'), 'sent');
  await waitUntil(() => ofType(events, 'message').length === 4, '4 replies');
  assert.deepEqual(ofType(events, 'message').map((e) => e.data), ['a done', 'b done', 'c done', 'd done']);
  client.close();
});

test('reconnects after the server is killed (1006) and after it shuts down (1001), on the same port', async () => {
  const srv = await startWsgate();
  const client = await openClient(srv.url);
  const events = record(client);

  const lost = nextEvent(client, 'close');
  await srv.stop('SIGKILL');
  const ev = /** @type {any} */ (await lost);
  assert.deepEqual([ev.code, ev.wasClean, ev.willReconnect], [1006, false, true]);
  assert.equal(client.state, 'reconnecting');
  assert.equal(client.send('sent while down'), 'queued');

  let opened = nextEvent(client, 'open', 10_000);
  const srv2 = await startWsgate([], { port: srv.port });
  const reopened = /** @type {any} */ (await opened);
  assert.deepEqual([reopened.reconnected, reopened.flushed], [true, 1]);
  await waitUntil(() => ofType(events, 'message').length === 1, 'the queued message echoed');
  assert.equal(ofType(events, 'message')[0].data, 'sent while down done');
  const reconnecting = ofType(events, 'reconnecting');
  assert.ok(reconnecting.length >= 1);
  assert.deepEqual(reconnecting.map((e) => e.attempt), reconnecting.map((_, i) => i + 1));

  const goingAway = nextEvent(client, 'close');
  opened = nextEvent(client, 'open', 10_000);
  await srv2.stop('SIGTERM');
  const ga = /** @type {any} */ (await goingAway);
  assert.deepEqual([ga.code, ga.reason, ga.wasClean, ga.willReconnect], [1001, 'server shutting down', true, true]);
  await startWsgate([], { port: srv.port });
  await opened;
  assert.equal((await roundTrip(client, 'after restart')).data, 'after restart done');
  client.close();
});

test('1009 (message too big) is terminal: no reconnect', async () => {
  const srv = await startWsgate(['-read-limit', '1024']);
  CountingWebSocket.created = 0;
  const client = await openClient(srv.url, { WebSocket: CountingWebSocket, minDelay: 10, maxDelay: 10 });
  const events = record(client);
  const closed = nextEvent(client, 'close');
  client.send('x'.repeat(2000));
  const ev = /** @type {any} */ (await closed);
  assert.deepEqual([ev.code, ev.willReconnect], [1009, false]);
  assert.equal(client.state, 'closed');
  await sleep(200); // twenty reconnect delays
  assert.equal(ofType(events, 'reconnecting').length, 0);
  assert.equal(CountingWebSocket.created, 1);
});

test('the close code decides: 1008 and other terminal codes stop, 1001, 1011, 1013 (slow consumer), 4500 reconnect', async () => {
  // The server side is scripted here: wsgate's echo server only closes with 1013 under conditions
  // that depend on its internals, and the client's wiring is what is tested.
  for (const [code, reconnect] of [[1008, false], [1000, false], [1002, false], [4000, false], [1001, true], [1011, true], [1013, true], [4500, true]]) {
    ScriptedWebSocket.sockets = [];
    const client = newClient('ws://example.invalid/ws', { WebSocket: ScriptedWebSocket, minDelay: 1, maxDelay: 1 });
    const events = record(client);
    const opened = nextEvent(client, 'open');
    client.connect();
    await opened;
    const closed = nextEvent(client, 'close');
    ScriptedWebSocket.sockets[0].serverClose(code, 'scripted');
    const ev = /** @type {any} */ (await closed);
    assert.deepEqual([ev.code, ev.reason, ev.willReconnect], [code, 'scripted', reconnect], `code ${code}`);
    if (reconnect) {
      await nextEvent(client, 'open');
      assert.equal(ScriptedWebSocket.sockets.length, 2, `code ${code}: one reconnect`);
      client.close();
    } else {
      await sleep(20); // twenty reconnect delays
      assert.equal(client.state, 'closed', `code ${code}`);
      assert.equal(ScriptedWebSocket.sockets.length, 1, `code ${code}: no reconnect`);
      assert.equal(ofType(events, 'reconnecting').length, 0, `code ${code}`);
    }
  }
});

test('close-code policy: which codes reconnect', () => {
  const reconnect = [1001, 1005, 1006, 1011, 1012, 1013, 1014, 4500, 4999];
  const terminal = [1000, 1002, 1003, 1007, 1008, 1009, 1010, 1015, 3000, 3999, 4000, 4499, 1004, 2000, 5000];
  for (const code of reconnect) {
    assert.equal(shouldReconnect(code), true, `code ${code}`);
  }
  for (const code of terminal) {
    assert.equal(shouldReconnect(code), false, `code ${code}`);
  }
  assert.deepEqual(RECONNECT_CODES, [1001, 1005, 1006, 1011, 1012, 1013, 1014]);
  assert.equal(CloseCode.POLICY_VIOLATION, 1008);
});

test('a full outbox makes send() throw, and close() hands back what was never sent', async () => {
  const url = await deadURL();
  const client = newClient(url, { WebSocket, outboxMessages: 2, outboxBytes: 10, minDelay: 1000 });
  client.connect();
  assert.equal(client.send('12345'), 'queued');
  const bin = new Uint8Array([1, 2, 3, 4]);
  assert.equal(client.send(bin), 'queued');
  bin[0] = 99; // the outbox holds a copy
  assert.throws(() => client.send('x'), (err) => err instanceof OutboxFullError && err.size === 1 && /2\/2 messages/.test(err.message));
  assert.deepEqual(client.outbox, { messages: 2, bytes: 9 });

  const roomy = newClient(url, { WebSocket, outboxMessages: 10, outboxBytes: 10, minDelay: 1000 });
  roomy.connect();
  roomy.send('123456');
  assert.throws(() => roomy.send('ééé'), (err) => err instanceof OutboxFullError && err.size === 6);
  assert.throws(() => roomy.send(new ArrayBuffer(5)), OutboxFullError);
  assert.equal(roomy.send(new ArrayBuffer(4)), 'queued');
  roomy.close();

  await nextEvent(client, 'reconnecting', 5000); // the first attempt failed: now waiting
  const closed = nextEvent(client, 'close');
  client.close(4000, 'done'); // no socket: the close event comes at once
  const ev = /** @type {any} */ (await closed);
  assert.deepEqual([ev.code, ev.reason, ev.willReconnect, client.state], [4000, 'done', false, 'closed']);
  assert.equal(ev.unsent.length, 2);
  assert.equal(ev.unsent[0], '12345');
  assert.deepEqual([...ev.unsent[1]], [1, 2, 3, 4]);
  assert.deepEqual(client.outbox, { messages: 0, bytes: 0 });
});

test('close() while waiting to reconnect stops all further attempts', async () => {
  const url = await deadURL();
  CountingWebSocket.created = 0;
  const client = newClient(url, { WebSocket: CountingWebSocket, minDelay: 100, maxDelay: 100 });
  client.connect();
  await nextEvent(client, 'reconnecting');
  client.close();
  const created = CountingWebSocket.created;
  await sleep(300); // three reconnect delays
  assert.equal(CountingWebSocket.created, created);
  assert.equal(client.state, 'closed');
});

test('drop() gives up the connection at once, as if the network failed, and the client reconnects', async () => {
  const srv = await startWsgate(['-subprotocols', 'chat.v2']);
  const client = await openClient(srv.url, { protocols: ['chat.v2'] });
  assert.equal(client.protocol, 'chat.v2');
  const events = record(client);
  client.drop('dead link');
  assert.deepEqual(events.map((ev) => ev.type), ['state', 'close', 'reconnecting'], 'synchronously');
  const close = ofType(events, 'close')[0];
  assert.deepEqual([close.code, close.reason, close.wasClean, close.willReconnect], [1006, 'dead link', false, true]);
  assert.equal(client.protocol, '');
  await nextEvent(client, 'open');
  assert.equal((await roundTrip(client, 'again')).data, 'again done');
  client.close();
  client.drop(); // nothing while the closing handshake is under way
  await waitUntil(() => client.state === 'closed', 'the client to close');
  client.drop(); // nor once closed
  assert.deepEqual(ofType(events, 'close').map((ev) => [ev.code, ev.wasClean]), [[1006, false], [1000, true]]);
});

test('a close listener may call close(): no reconnecting event follows', async () => {
  const url = await deadURL();
  const client = newClient(url, { WebSocket, minDelay: 10, maxDelay: 10 });
  const events = record(client);
  client.addEventListener('close', () => client.close());
  client.connect();
  await waitUntil(() => client.state === 'closed', 'the client to close');
  await sleep(50);
  assert.equal(ofType(events, 'reconnecting').length, 0);
});

test('maxAttempts: gives up after that many reconnect attempts in a row', async () => {
  const url = await deadURL();
  CountingWebSocket.created = 0;
  const client = newClient(url, { WebSocket: CountingWebSocket, minDelay: 5, maxDelay: 10, maxAttempts: 3 });
  const events = record(client);
  client.connect();
  await waitUntil(() => client.state === 'closed', 'the client to give up');
  assert.equal(CountingWebSocket.created, 4); // the first connection and 3 reconnects
  const closes = ofType(events, 'close');
  assert.deepEqual(closes.map((e) => e.willReconnect), [true, true, true, false]);
  assert.deepEqual(closes.map((e) => e.code), [1006, 1006, 1006, 1006]);
});

test('reconnect delays come from the backoff with options.random', async () => {
  const url = await deadURL();
  const client = newClient(url, { WebSocket, minDelay: 40, maxDelay: 100, factor: 2, maxAttempts: 4, random: () => 0.5 });
  const events = record(client);
  client.connect();
  await waitUntil(() => client.state === 'closed', 'the client to give up');
  assert.deepEqual(ofType(events, 'reconnecting').map((e) => [e.attempt, e.delay]), [[1, 20], [2, 40], [3, 50], [4, 50]]);
});

test('a connection that stayed open for stableAfter restarts the backoff; a short one does not', async () => {
  for (const stableAfter of [0, 60_000]) {
    const srv = await startWsgate();
    const client = await openClient(srv.url, { stableAfter, minDelay: 20, maxDelay: 20 });
    const events = record(client);
    await srv.stop('SIGKILL');
    const srv2 = await startWsgate([], { port: srv.port });
    await nextEvent(client, 'open', 10_000);
    const firstRun = ofType(events, 'reconnecting').length;
    await srv2.stop('SIGKILL');
    await waitUntil(() => ofType(events, 'reconnecting').length > firstRun, 'a reconnecting event');
    const attempt = ofType(events, 'reconnecting')[firstRun].attempt;
    assert.equal(attempt, stableAfter === 0 ? 1 : firstRun + 1, `stableAfter ${stableAfter}`);
    client.close();
  }
});

test('backoffDelay: full jitter below an exponential ceiling capped at maxDelay', () => {
  const b = { minDelay: 100, maxDelay: 1000, factor: 2 };
  const ceilings = [100, 200, 400, 800, 1000, 1000];
  ceilings.forEach((ceiling, i) => {
    const attempt = i + 1;
    assert.equal(backoffDelay(attempt, b, () => 0), 0);
    assert.equal(backoffDelay(attempt, b, () => 0.5), ceiling / 2);
    assert.equal(backoffDelay(attempt, b, () => 0.999999), ceiling - 1);
    assert.equal(backoffDelay(attempt, b, () => 1), ceiling - 1, 'a random() of 1 still stays below the ceiling');
  });
  assert.equal(backoffDelay(10_000, b, () => 0.5), 500, 'huge attempts do not overflow');

  // Seeded: every draw inside [0, ceiling), integers, spread over the whole range.
  const random = mulberry32(42);
  for (const [i, ceiling] of ceilings.entries()) {
    const draws = Array.from({ length: 2000 }, () => backoffDelay(i + 1, b, random));
    assert.ok(draws.every((d) => Number.isInteger(d) && d >= 0 && d < ceiling), `attempt ${i + 1}`);
    const mean = draws.reduce((a, d) => a + d, 0) / draws.length;
    assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.05, `attempt ${i + 1}: mean ${mean} for ceiling ${ceiling}`);
    assert.ok(Math.min(...draws) < ceiling * 0.05 && Math.max(...draws) > ceiling * 0.95, `attempt ${i + 1}: full range`);
  }
  assert.deepEqual(
    { minDelay: defaults.minDelay, maxDelay: defaults.maxDelay, factor: defaults.factor },
    { minDelay: 500, maxDelay: 30000, factor: 2 },
  );
});

test('arguments are checked', () => {
  assert.throws(() => new WsgateClient('ftp://example.com/ws', { WebSocket }), SyntaxError);
  assert.equal(new WsgateClient('http://example.com/ws#x', { WebSocket }).url, 'ws://example.com/ws');
  assert.equal(new WsgateClient('https://example.com/ws', { WebSocket }).url, 'wss://example.com/ws');
  assert.throws(() => new WsgateClient('ws://example.com/', { WebSocket: undefined }), TypeError);
  assert.throws(() => new WsgateClient('ws://example.com/', { WebSocket, minDelay: 0 }), RangeError);
  assert.throws(() => new WsgateClient('ws://example.com/', { WebSocket, maxDelay: 10, minDelay: 20 }), RangeError);
  assert.throws(() => new WsgateClient('ws://example.com/', { WebSocket, outboxBytes: -1 }), RangeError);
  const client = new WsgateClient('ws://example.com/', { WebSocket });
  assert.equal(client.state, 'closed');
  assert.throws(() => client.send('not connected'), ClosedError);
  assert.throws(() => client.send(/** @type {any} */ (42)), TypeError);
  assert.throws(() => client.close(1001), RangeError);
  assert.throws(() => client.close(5000), RangeError);
  assert.throws(() => client.close(1000, 'é'.repeat(62)), RangeError);
  client.close(1000, 'é'.repeat(61)); // 122 bytes fit; closing a closed client does nothing
});

/**
 * A small seeded PRNG (uniform in [0, 1)), so that the statistics above are reproducible.
 * @param {number} seed
 */
function mulberry32(seed) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
