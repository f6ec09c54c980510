// The pub/sub client (/js/wsgate-pubsub.js) in Node against a real wsgate speaking wsgate.v1:
// publish and subscribe between clients, error codes, presence, history, and recovery of what a
// client missed while its network was cut, while its link was dead, and across a server restart.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket, { WebSocketServer } from 'ws';
import { PubSubClient, PubSubError, RequestError, ErrorCode } from '../../cmd/wsgate/web/js/wsgate-pubsub.js';
import { OutboxFullError } from '../../cmd/wsgate/web/js/wsgate.js';
import { startWsgate, nextEvent, waitUntil } from './server.js';
import { startProxy } from './proxy.js';
import { newClient, closeAll, recorder } from './pubsub-clients.js';

after(closeAll);

/**
 * A connected client.
 * @param {string} url
 * @param {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').PubSubClientOptions} [options]
 */
async function connected(url, options) {
  const client = newClient(url, options);
  const opened = nextEvent(client, 'open');
  client.connect();
  await opened;
  return client;
}

/**
 * Publishes data, one at a time, in order.
 * @param {PubSubClient} client
 * @param {string} channel
 * @param {unknown[]} data
 */
async function publishAll(client, channel, data) {
  const positions = [];
  for (const d of data) {
    positions.push(await client.publish(channel, d));
  }
  return positions;
}

/**
 * Asserts that pubs hold exactly the offsets from..to, in order.
 * @param {{offset: number}[]} pubs
 * @param {number} from
 * @param {number} to
 */
function assertOffsets(pubs, from, to) {
  assert.deepEqual(pubs.map((p) => p.offset), Array.from({ length: to - from + 1 }, (_, i) => from + i));
}

/**
 * A scripted server on a loopback port: answer gets each request of each connection, and a
 * function that sends a frame (replies and pushes) on that connection.
 * @param {(req: any, send: (msg: object) => void) => void} answer
 * @returns {Promise<string>} its URL
 */
async function scriptedServer(answer) {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 }); // it accepts the first subprotocol offered
  after(() => wss.close());
  wss.on('connection', (ws) => ws.on('message', (m) => answer(JSON.parse(String(m)), (msg) => ws.send(JSON.stringify(msg)))));
  await new Promise((resolve) => wss.once('listening', resolve));
  return `ws://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (wss.address()).port}/`;
}

const range = (/** @type {string} */ prefix, /** @type {number} */ n) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);

test('what one client publishes reaches the other, in order, with its position', async () => {
  const srv = await startWsgate();
  const a = await connected(srv.url);
  const b = await connected(srv.url);
  assert.equal(a.protocol, 'wsgate.v1');
  const rec = recorder(a, 'chat');
  const info = await rec.sub.ready;
  assert.equal(rec.sub.state, 'subscribed');
  assert.deepEqual({ ...info, epoch: '' }, {
    channel: 'chat', epoch: '', offset: 0, since: null, recovered: false, resubscribed: false, publications: 0, server: false,
  });
  const positions = await publishAll(b, 'chat', [{ text: 'hi' }, 'two', 3, null, [true]]);
  assert.deepEqual(positions.map((p) => p.offset), [1, 2, 3, 4, 5]);
  assert.ok(positions.every((p) => p.epoch === info.epoch));
  await waitUntil(() => rec.pubs.length === 5, 'five publications');
  assert.deepEqual(rec.data(), [{ text: 'hi' }, 'two', 3, null, [true]]);
  assertOffsets(rec.pubs, 1, 5);
  assert.ok(rec.pubs.every((p) => p.channel === 'chat' && p.epoch === info.epoch && !p.recovered));
  assert.deepEqual(rec.sub.position, { epoch: info.epoch, offset: 5 });

  await rec.sub.unsubscribe();
  assert.equal(rec.sub.state, 'unsubscribed');
  await b.publish('chat', 'after');
  assert.ok((await a.ping()) >= 0); // the publication would have come before the ping's reply
  assert.equal(rec.pubs.length, 5, 'delivered after unsubscribe');
  assert.throws(() => { a.subscribe('x'); a.subscribe('x'); }, (/** @type {any} */ err) => err instanceof PubSubError && err.code === 106);
});

test('errors carry the protocol code and message; none closes the connection', async () => {
  const srv = await startWsgate(['-max-data-size', '64', '-max-subscriptions', '2']);
  const a = await connected(srv.url);
  const bad = recorder(a, 'no spaces');
  await assert.rejects(bad.sub.ready, (/** @type {any} */ err) => err instanceof PubSubError && err.code === ErrorCode.BAD_CHANNEL &&
    err.op === 'subscribe' && err.channel === 'no spaces' && /not allowed/.test(err.message) && !err.temporary);
  assert.equal(bad.sub.state, 'failed');
  assert.deepEqual(bad.errors.map((e) => e.code), [102]);
  await assert.rejects(a.publish('', 1), { name: 'PubSubError', code: 102, op: 'publish' });
  await assert.rejects(a.publish('chat', 'x'.repeat(100)), (/** @type {any} */ err) => err.code === ErrorCode.TOO_LARGE && /limit 64/.test(err.message));
  await assert.rejects(a.history('chat', { limit: 5000 }), { code: ErrorCode.BAD_REQUEST });
  await assert.rejects(a.publish('chat', undefined), TypeError);
  await Promise.all([a.subscribe('s1').ready, a.subscribe('s2').ready]);
  await assert.rejects(a.subscribe('s3').ready, { code: ErrorCode.LIMIT_EXCEEDED });
  // A frame the server cannot read has no id to answer to: the client reports it as an error event.
  const error = nextEvent(a, 'error');
  a.send('not json');
  assert.equal(/** @type {any} */ (await error).error.code, ErrorCode.BAD_REQUEST);
  assert.equal(a.state, 'open');
  assert.deepEqual(await a.publish('chat', 'still fine'), { epoch: (await a.history('chat')).epoch, offset: 1 });

  // What the client API cannot send: an unknown op, a binary frame, a duplicate subscribe.
  const raw = new WebSocket(srv.url, ['wsgate.v1']);
  await new Promise((resolve, reject) => raw.once('open', resolve).once('error', reject));
  /** @type {any[]} */
  const replies = [];
  raw.on('message', (m) => replies.push(JSON.parse(String(m))));
  raw.send('{"id":1,"op":"teleport"}');
  raw.send(Buffer.from('{"id":2,"op":"ping"}'));
  raw.send('{"id":3,"op":"subscribe","channel":"c"}');
  raw.send('{"id":4,"op":"subscribe","channel":"c"}');
  raw.send('{"id":5,"op":"unsubscribe","channel":"d"}');
  await waitUntil(() => replies.length === 5, 'five replies');
  assert.deepEqual(replies.map((r) => [r.id, r.error?.code]), [[1, 101], [undefined, 108], [3, undefined], [4, 106], [5, 105]]);
  assert.equal(replies[0].error.message, 'unknown op "teleport"');
  raw.close();
});

test('refusals for now: a broker at capacity (202) and a connection over its request rate (203) are temporary', async () => {
  const srv = await startWsgate(['-history-max-channels', '1', '-request-rate', '1', '-max-subscriptions', '1']);
  const a = await connected(srv.url);
  // 'first' has a subscriber, so the broker cannot forget it to make room for 'second'.
  await a.subscribe('first').ready;
  await assert.rejects(a.publish('second', 2), (/** @type {any} */ err) => err instanceof PubSubError &&
    err.code === ErrorCode.FULL && err.code === 202 && err.temporary);
  // The burst (2 requests) is spent: the next request within the second is refused.
  await assert.rejects(a.ping(), (/** @type {any} */ err) => err instanceof PubSubError &&
    err.code === ErrorCode.RATE_LIMITED && err.code === 203 && err.temporary);
  assert.equal(a.state, 'open');
});

test('presence: who is there; the joins and leaves the server gathers reach onJoin and onLeave once per connection', async () => {
  const srv = await startWsgate();
  const a = await connected(srv.url);
  const watch = recorder(a, 'room', { presence: true });
  await watch.sub.ready;
  const [{ conn: aConn }] = (await a.presence('room')).clients;
  /** @type {string[]} */
  const pushed = []; // the entries of the presence pushes, as the server sent them
  a.on('message', (ev) => {
    const msg = JSON.parse(String(ev.data));
    if (msg.push === 'presence' && msg.channel === 'room') {
      pushed.push(...msg.join.map((/** @type {any} */ c) => 'join ' + c.conn), ...msg.leave.map((/** @type {any} */ c) => 'leave ' + c.conn));
    }
  });
  const others = await Promise.all([1, 2, 3].map(() => connected(srv.url)));
  const subs = others.map((c) => recorder(c, 'room'));
  await Promise.all(subs.map((r) => r.sub.ready));
  const present = await a.presence('room');
  assert.equal(present.total, 4);
  const conns = present.clients.map((c) => c.conn).filter((c) => c !== aConn);
  assert.equal(conns.length, 3);
  const joins = conns.map((c) => 'join ' + c);
  await waitUntil(() => joins.every((j) => watch.presence.includes(j)), `joins of ${conns}: ${watch.presence}`);
  assert.ok(subs.every((r) => r.presence.length === 0), 'presence pushes only with presence: true');

  // One leaves by unsubscribing, two by going away.
  await subs[0].sub.unsubscribe();
  others[1].close();
  others[2].close();
  const leaves = conns.map((c) => 'leave ' + c);
  await waitUntil(() => leaves.every((l) => watch.presence.includes(l)), `leaves of ${conns}: ${watch.presence}`);
  assert.deepEqual(watch.presence, pushed, 'one call per entry of the pushes, in their order');
  assert.deepEqual(watch.presence.filter((e) => e !== 'join ' + aConn).sort(), [...joins, ...leaves].sort(), 'each change once');
  assert.deepEqual((await a.presence('room')).clients.map((c) => c.conn), [aConn]);
});

test('presence pushes from a scripted server: a gathered push is handed on entry by entry, joins first', async () => {
  const url = await scriptedServer((req, send) => {
    send({ id: req.id, result: { epoch: 'e', offset: 0, recovered: false } });
    send({ push: 'presence', channel: 'room', join: [{ conn: '1', user: 'ann' }, { conn: '2' }], leave: [{ conn: '3' }] });
    send({ push: 'presence', channel: 'elsewhere', join: [{ conn: '4' }], leave: [] });
    send({ push: 'presence', channel: 'room', join: [], leave: [{ conn: '1', user: 'ann' }] });
  });
  const a = await connected(url);
  /** @type {string[]} */
  const seen = [];
  a.subscribe('room', {
    presence: true,
    onJoin: (c, channel) => seen.push(`join ${c.conn} ${c.user ?? '-'} ${channel}`),
    onLeave: (c, channel) => seen.push(`leave ${c.conn} ${c.user ?? '-'} ${channel}`),
  });
  await waitUntil(() => seen.length === 4, 'four presence changes');
  assert.deepEqual(seen, ['join 1 ann room', 'join 2 - room', 'leave 3 - room', 'leave 1 ann room']);
});

test('history: the latest, after a position, and incomplete for another epoch', async () => {
  const srv = await startWsgate(['-history-size', '4']);
  const a = await connected(srv.url);
  const empty = await a.history('log');
  assert.deepEqual({ ...empty, epoch: '' }, { epoch: '', offset: 0, complete: true, more: false, publications: [] });
  await publishAll(a, 'log', range('m', 6));
  const latest = await a.history('log', { limit: 2 });
  assert.deepEqual(latest.publications, [{ offset: 5, data: 'm5' }, { offset: 6, data: 'm6' }]);
  assert.equal(latest.offset, 6);
  const since = await a.history('log', { since: { epoch: latest.epoch, offset: 3 } });
  assert.deepEqual(since.publications.map((p) => p.data), ['m4', 'm5', 'm6']);
  assert.equal(since.complete, true);
  const trimmed = await a.history('log', { since: { epoch: latest.epoch, offset: 0 } });
  assert.equal(trimmed.complete, false, 'm1 and m2 fell out of a history of 4');
  const other = await a.history('log', { since: { epoch: 'another', offset: 1 } });
  assert.equal(other.complete, false);
});

test('history is paged by the server: 60 publications of 50 KB, whole, once, in order', async () => {
  const srv = await startWsgate(['-history-size', '100']); // replies are paged to 256 KiB
  const a = await connected(srv.url);
  const big = (/** @type {number} */ i) => ({ i, pad: 'x'.repeat(50_000) });
  const [{ epoch }] = await publishAll(a, 'big', Array.from({ length: 60 }, (_, i) => big(i + 1)));
  const start = { epoch, offset: 0 };

  const page = await a.history('big', { since: start, limit: 60, all: false });
  assert.ok(page.more && page.publications.length > 0 && page.publications.length < 60, `one page: ${page.publications.length}, more ${page.more}`);
  assertOffsets(page.publications, 1, page.publications.length);
  for (const h of [await a.history('big', { since: start, limit: 60 }), await a.history('big', { limit: 60 })]) {
    assertOffsets(h.publications, 1, 60);
    assert.deepEqual(h.publications.map((p) => /** @type {any} */ (p.data).i), Array.from({ length: 60 }, (_, i) => i + 1));
    assert.deepEqual([h.epoch, h.offset, h.complete, h.more], [epoch, 60, true, false]);
  }
  const some = await a.history('big', { since: { epoch, offset: 10 }, limit: 20 });
  assertOffsets(some.publications, 11, 30);
  assert.equal(some.more, true, 'more follow the 20 asked for');
});

test('presence is paged: one page with limit and after, or every page', async () => {
  const srv = await startWsgate();
  const members = await Promise.all([1, 2, 3].map(() => connected(srv.url)));
  await Promise.all(members.map((c) => c.subscribe('room').ready));
  const a = members[0];
  const whole = await a.presence('room');
  assert.deepEqual([whole.total, whole.clients.length, whole.next], [3, 3, undefined]);
  const first = await a.presence('room', { all: false, limit: 2 });
  assert.deepEqual([first.total, first.clients, first.next], [3, whole.clients.slice(0, 2), whole.clients[1].conn]);
  const rest = await a.presence('room', { all: false, limit: 2, after: first.next });
  assert.deepEqual([rest.clients, rest.next], [whole.clients.slice(2), undefined]);
  const two = await a.presence('room', { limit: 2 });
  assert.deepEqual([two.clients, two.next], [first.clients, first.next], 'at most limit clients, and where to go on');

  // A scripted server pages by two, and once answers an empty page (its queue was full).
  const conns = ['1', '2', '3', '4', '5'];
  let full = true;
  /** @type {any[]} */
  const asked = [];
  const url = await scriptedServer((req, send) => {
    asked.push([req.after, req.limit]);
    const from = req.after ? conns.indexOf(req.after) + 1 : 0;
    if (from === 2 && full) {
      full = false;
      send({ id: req.id, result: { total: 5, clients: [], next: req.after } });
      return;
    }
    const page = conns.slice(from, from + Math.min(2, req.limit));
    const next = from + page.length < conns.length ? page[page.length - 1] : undefined;
    send({ id: req.id, result: { total: 5, clients: page.map((conn) => ({ conn })), next } });
  });
  const b = await connected(url);
  assert.deepEqual(await b.presence('room'), { total: 5, clients: conns.map((conn) => ({ conn })) });
  assert.deepEqual(asked, [[undefined, 1000], ['2', 1000], ['2', 1000], ['4', 1000]]);
});

test('a helper waiting out a full queue stops waiting when the client closes', async () => {
  const url = await scriptedServer((req, send) => send({ id: req.id, result: { epoch: 'e', offset: 9, complete: true, more: true, publications: [] } }));
  const a = await connected(url, { minDelay: 60_000, maxDelay: 60_000, random: () => 0.99 });
  let asked = 0;
  a.on('message', () => asked++);
  const history = a.history('c');
  await waitUntil(() => asked === 1, 'the first, empty, page');
  const t0 = Date.now();
  a.close();
  await assert.rejects(history, { name: 'RequestError', reason: 'closed', sent: false });
  assert.ok(Date.now() - t0 < 1000, `rejected after ${Date.now() - t0} ms`);
});

test('recovery: a client whose network is cut gets every missed publication once, in order, then the live ones', async () => {
  const srv = await startWsgate();
  const proxy = await startProxy(srv.port);
  const a = await connected(proxy.url);
  const b = await connected(srv.url);
  const rec = recorder(a, 'chat');
  await rec.sub.ready;
  await publishAll(b, 'chat', range('live', 2));
  await waitUntil(() => rec.pubs.length === 2, 'two live publications');

  const lost = nextEvent(a, 'close');
  proxy.cut();
  const close = /** @type {any} */ (await lost);
  assert.deepEqual([close.code, close.willReconnect, a.state], [1006, true, 'reconnecting']);
  assert.equal(rec.sub.state, 'subscribing');
  await publishAll(b, 'chat', range('missed', 5));
  await nextEvent(a, 'close', 2000); // an attempt fails while the network is down
  proxy.restore();

  await waitUntil(() => rec.subscribed.length === 2, 'the re-subscribe', 10_000);
  const epoch = rec.subscribed[0].epoch;
  assert.deepEqual(rec.subscribed[1], {
    channel: 'chat', epoch, offset: 7, since: { epoch, offset: 2 }, recovered: true, resubscribed: true, publications: 5, server: false,
  });
  await publishAll(b, 'chat', range('after', 2));
  await waitUntil(() => rec.pubs.length === 9, 'nine publications');
  assert.deepEqual(rec.data(), [...range('live', 2), ...range('missed', 5), ...range('after', 2)]);
  assertOffsets(rec.pubs, 1, 9);
  assert.deepEqual(rec.pubs.map((p) => p.recovered), [false, false, true, true, true, true, true, false, false]);
  assert.deepEqual(rec.errors, []);
});

test('a subscriber that falls behind: what the server dropped for it is fetched from history, in place, once', async () => {
  // A write to the frozen link waits; -write-timeout keeps a slow machine from cutting it meanwhile.
  const srv = await startWsgate(['-slow-consumer', 'drop-newest', '-send-queue-messages', '8', '-history-size', '1000', '-write-timeout', '60s']);
  const proxy = await startProxy(srv.port);
  const a = await connected(proxy.url);
  const b = await connected(srv.url);
  /** @type {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').GapInfo[]} */
  const lost = [];
  const rec = recorder(a, 'feed', { onGap: (g) => lost.push(g) });
  await rec.sub.ready;
  let gapPushes = 0;
  a.on('message', (ev) => {
    gapPushes += JSON.parse(String(ev.data)).push === 'gap' ? 1 : 0;
  });
  // A burst of 12 MB: the TCP buffers on the way take some (4.5 MB on loopback here), the queue 8
  // more, and the server drops the rest for this connection.
  const n = 300;
  const pad = 'x'.repeat(40_000);
  const burst = (/** @type {number} */ from) => Array.from({ length: n }, (_, i) => ({ i: from + i, pad }));

  // Nothing follows the burst: only the gap push can tell the client what it missed.
  proxy.freeze();
  await publishAll(b, 'feed', burst(1));
  proxy.thaw();
  await waitUntil(() => rec.pubs.length === n, `${n} publications`, 20_000);
  assertOffsets(rec.pubs, 1, n);
  const live = rec.pubs.findIndex((p) => p.recovered);
  assert.ok(live > 0, `some came live before the queue filled: ${live}`);
  assert.ok(rec.pubs.every((p, i) => p.recovered === i >= live), 'the dropped ones, and only they, are marked recovered');
  assert.ok(gapPushes > 0, 'a gap push');

  // Publications follow the burst at once: a jump in offsets may tell first; live ones wait for the
  // missed ones (or are dropped too while the queue drains, and fetched with them).
  proxy.freeze();
  await publishAll(b, 'feed', burst(n + 1));
  proxy.thaw();
  await publishAll(b, 'feed', [{ i: 2 * n + 1 }, { i: 2 * n + 2 }]);
  await waitUntil(() => rec.pubs.length === 2 * n + 2, `${2 * n + 2} publications`, 20_000);
  assertOffsets(rec.pubs, 1, 2 * n + 2);
  assert.deepEqual(rec.pubs.map((p) => /** @type {any} */ (p.data).i), Array.from({ length: 2 * n + 2 }, (_, i) => i + 1));
  assert.ok(rec.pubs.slice(n, 2 * n).some((p) => p.recovered), 'the second burst overflowed too');
  assert.deepEqual([lost, rec.errors, rec.subscribed.length], [[], [], 1], 'nothing lost, no reconnect');
});

test('offset jumps and gap pushes from a scripted server: fetched in pages, live ones held, losses told by onGap', async () => {
  /** @type {any[]} */
  const asked = [];
  const url = await scriptedServer((req, send) => {
    const pub = (/** @type {number} */ offset) => send({ push: 'pub', channel: 'g', epoch: 'e', offset, data: `d${offset}` });
    const stored = (/** @type {number[]} */ offsets) => offsets.map((offset) => ({ offset, data: `d${offset}` }));
    if (req.op === 'subscribe') {
      send({ id: req.id, result: { epoch: 'e', offset: 2, recovered: false } });
      [3, 4, 7].forEach(pub); // 5 and 6 were dropped
      return;
    }
    asked.push([req.op, req.since?.offset, req.limit]);
    switch (req.since?.offset) {
      case 4: // a page: more follow
        send({ id: req.id, result: { epoch: 'e', offset: 7, complete: true, more: true, publications: stored([5]) } });
        break;
      case 5: // a live one comes before the reply: it waits for 6
        pub(8);
        send({ id: req.id, result: { epoch: 'e', offset: 8, complete: true, publications: stored([6]) } });
        send({ push: 'gap', channel: 'g', epoch: 'e', offset: 10 }); // 9 and 10 were dropped
        break;
      case 8: // 9 is gone from history
        send({ id: req.id, result: { epoch: 'e', offset: 10, complete: false, publications: stored([10]) } });
        pub(11);
        send({ push: 'gap', channel: 'g', epoch: 'e', offset: 12 });
        break;
      case 11: // history refused for good
        send({ id: req.id, error: { code: 104, message: 'no history for you' } });
        pub(13);
        pub(13); // and a duplicate
        break;
    }
  });
  const a = await connected(url);
  /** @type {any[]} */
  const lost = [];
  const rec = recorder(a, 'g', { onGap: (g) => lost.push(g) });
  await waitUntil(() => rec.pubs.length === 9, 'nine publications');
  assert.deepEqual(rec.pubs.map((p) => [p.offset, p.data, p.recovered]), [
    [3, 'd3', false], [4, 'd4', false], [5, 'd5', true], [6, 'd6', true], [7, 'd7', false], [8, 'd8', false],
    [10, 'd10', true], [11, 'd11', false], [13, 'd13', false]]);
  assert.deepEqual(asked, [['history', 4, 2], ['history', 5, 1], ['history', 8, 2], ['history', 11, 1]]);
  assert.deepEqual(lost, [
    { channel: 'g', since: { epoch: 'e', offset: 8 }, epoch: 'e', offset: 9 },
    { channel: 'g', since: { epoch: 'e', offset: 11 }, epoch: 'e', offset: 12 },
  ]);
  assert.deepEqual(rec.errors.map((e) => [e.code, e.op, e.channel]), [[104, 'history', 'g']]);
  assert.deepEqual(rec.sub.position, { epoch: 'e', offset: 13 });
});

test('a recovering subscribe whose reply is paged: the rest comes from history before the live ones', async () => {
  /** @type {any[]} */
  const asked = [];
  let full = true;
  const url = await scriptedServer((req, send) => {
    const stored = (/** @type {number[]} */ offsets) => offsets.map((offset) => ({ offset, data: `d${offset}` }));
    if (req.op === 'subscribe') {
      send({ id: req.id, result: { epoch: 'e', offset: 5, recovered: true, more: true, publications: stored([2, 3]) } });
      send({ push: 'pub', channel: 'r', epoch: 'e', offset: 6, data: 'd6' });
      return;
    }
    asked.push([req.since, req.limit]);
    if (full) { // the connection's queue was full: no publication fitted
      full = false;
      send({ id: req.id, result: { epoch: 'e', offset: 6, complete: true, more: true, publications: [] } });
      return;
    }
    send({ id: req.id, result: { epoch: 'e', offset: 6, complete: true, more: true, publications: stored([4, 5]) } });
  });
  const a = await connected(url);
  const rec = recorder(a, 'r', { since: { epoch: 'e', offset: 1 } });
  const info = await rec.sub.ready;
  assert.deepEqual(rec.pubs.map((p) => [p.offset, p.data, p.recovered]),
    [[2, 'd2', true], [3, 'd3', true], [4, 'd4', true], [5, 'd5', true], [6, 'd6', false]], 'ready once caught up');
  assert.deepEqual({ ...info }, {
    channel: 'r', epoch: 'e', offset: 5, since: { epoch: 'e', offset: 1 }, recovered: true, resubscribed: false, publications: 4, server: false,
  });
  assert.deepEqual(asked, [[{ epoch: 'e', offset: 3 }, 2], [{ epoch: 'e', offset: 3 }, 2]]);
});

test('a recovering subscribe after a reconnect gets 60 publications of 50 KB through paged replies, once, in order', async () => {
  const srv = await startWsgate(['-history-size', '100']);
  const proxy = await startProxy(srv.port);
  const a = await connected(proxy.url);
  const b = await connected(srv.url);
  const rec = recorder(a, 'big');
  await rec.sub.ready;
  await publishAll(b, 'big', [{ i: 1 }]);
  await waitUntil(() => rec.pubs.length === 1, 'one live publication');
  const lost = nextEvent(a, 'close');
  proxy.cut();
  await lost;
  const pad = 'x'.repeat(50_000);
  await publishAll(b, 'big', Array.from({ length: 60 }, (_, i) => ({ i: i + 2, pad })));
  proxy.restore();
  await waitUntil(() => rec.pubs.length === 61, `61 publications, have ${rec.pubs.length}`, 15_000);
  await publishAll(b, 'big', [{ i: 62 }]);
  await waitUntil(() => rec.pubs.length === 62, 'the live one after');
  assertOffsets(rec.pubs, 1, 62);
  assert.deepEqual(rec.pubs.map((p) => /** @type {any} */ (p.data).i), Array.from({ length: 62 }, (_, i) => i + 1));
  assert.deepEqual(rec.pubs.map((p) => p.recovered), [false, ...Array(60).fill(true), false]);
  assert.deepEqual([rec.subscribed[1].recovered, rec.subscribed[1].publications, rec.subscribed[1].offset], [true, 60, 61]);
});

test('a recovery cut off while it fetches pages goes on from the last publication delivered', async () => {
  const srv = await startWsgate();
  const proxy = await startProxy(srv.port);
  const a = await connected(proxy.url);
  const b = await connected(srv.url);
  let cut = false;
  const rec = recorder(a, 'big', {
    onPublication: (p) => {
      rec.pubs.push(p);
      if (p.offset === 10 && !cut) {
        cut = true;
        a.drop('test: cut in the middle of the pages'); // no publication is delivered after this
      }
    },
  });
  await rec.sub.ready;
  await publishAll(b, 'big', [{ i: 1 }]); // a channel without history or subscribers is forgotten
  await waitUntil(() => rec.pubs.length === 1, 'one live publication');
  proxy.cut();
  await waitUntil(() => a.state === 'reconnecting', 'reconnecting');
  const pad = 'x'.repeat(50_000);
  await publishAll(b, 'big', Array.from({ length: 30 }, (_, i) => ({ i: i + 2, pad })));
  proxy.restore();
  await waitUntil(() => rec.pubs.length === 31, '31 publications', 15_000);
  assertOffsets(rec.pubs, 1, 31);
  assert.deepEqual(rec.pubs.map((p) => /** @type {any} */ (p.data).i), Array.from({ length: 31 }, (_, i) => i + 1));
  assert.ok(rec.pubs.slice(1).every((p) => p.recovered));
  assert.deepEqual(rec.subscribed.map((s) => [s.since?.offset, s.recovered, s.publications]), [[undefined, false, 0], [1, true, 30], [10, true, 21]]);
});

test('recovery under load: dropped twice while another client publishes, nothing lost, nothing twice', async () => {
  const srv = await startWsgate();
  const a = await connected(srv.url, { minDelay: 1, maxDelay: 20 });
  const b = await connected(srv.url);
  const rec = recorder(a, 'busy');
  await rec.sub.ready;
  const n = 300;
  for (let i = 1; i <= n; i++) {
    await b.publish('busy', `p${i}`);
    if (i === 100 || i === 200) {
      a.drop(`test: cut after p${i}`); // the publisher goes on at once, the client comes back later
    }
  }
  await waitUntil(() => rec.pubs.length === n && rec.subscribed.length === 3, `${n} publications and two re-subscribes`, 10_000);
  assertOffsets(rec.pubs, 1, n);
  assert.ok(rec.subscribed.slice(1).every((s) => s.resubscribed && s.recovered), JSON.stringify(rec.subscribed));
  assert.ok(rec.pubs.some((p) => p.recovered), 'some publications came with a recovery');
});

test('a server restart loses the in-memory history: the client is told recovered: false and goes on', async () => {
  const srv = await startWsgate();
  const a = await connected(srv.url);
  const rec = recorder(a, 'chat');
  const first = await rec.sub.ready;
  await publishAll(a, 'chat', ['before']);
  await waitUntil(() => rec.pubs.length === 1, 'one publication');

  await srv.stop('SIGTERM');
  await startWsgate([], { port: srv.port });
  await waitUntil(() => rec.subscribed.length === 2, 'the re-subscribe', 10_000);
  const again = rec.subscribed[1];
  assert.notEqual(again.epoch, first.epoch);
  assert.deepEqual({ ...again, epoch: '' }, {
    channel: 'chat', epoch: '', offset: 0, since: { epoch: first.epoch, offset: 1 }, recovered: false, resubscribed: true, publications: 0, server: false,
  });
  await publishAll(a, 'chat', ['after']);
  await waitUntil(() => rec.pubs.length === 2, 'a publication in the new epoch');
  assert.deepEqual(rec.pubs.map((p) => [p.epoch === again.epoch, p.offset, p.data]), [[false, 1, 'before'], [true, 1, 'after']]);
});

test('a dead link is noticed by the ping timeout: dropped, reconnected, recovered', async () => {
  const srv = await startWsgate();
  const proxy = await startProxy(srv.port);
  const a = await connected(proxy.url, { pingTimeout: 400 });
  const b = await connected(srv.url);
  const rec = recorder(a, 'chat');
  await rec.sub.ready;
  const lost = nextEvent(a, 'close', 3000);
  proxy.freeze(); // no frame passes, nothing is closed: only the timeout can tell
  const t0 = Date.now();
  await publishAll(b, 'chat', range('m', 3));
  const close = /** @type {any} */ (await lost);
  const waited = Date.now() - t0;
  assert.deepEqual([close.code, close.wasClean, close.willReconnect, close.reason], [1006, false, true, 'no frame from the server for 400 ms']);
  assert.ok(waited >= 300 && waited < 2000, `dropped after ${waited} ms`);
  await waitUntil(() => rec.pubs.length === 3, 'the recovered publications');
  assert.deepEqual(rec.pubs.map((p) => [p.data, p.recovered]), [['m1', true], ['m2', true], ['m3', true]]);
  // While frames come (here the server's replies), the timeout never fires.
  for (let i = 0; i < 8; i++) {
    await a.ping();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.equal(rec.subscribed.length, 2, 'no drop while the link was alive');
});

test('requests made while disconnected wait for the connection, within the outbox and the request timeout', async () => {
  const srv = await startWsgate();
  const a = newClient(srv.url, { requestTimeout: 2000 });
  const rec = recorder(a, 'chat'); // subscriptions may be made before connect()
  await assert.rejects(a.publish('chat', 'x'), (/** @type {any} */ err) => err instanceof RequestError && err.reason === 'closed' && !err.sent);
  a.connect();
  const published = a.publish('chat', 'sent while connecting'); // waits for the open
  assert.equal(a.state, 'connecting');
  assert.deepEqual((await published).offset, 1);
  await waitUntil(() => rec.pubs.length === 1, 'its own publication, subscribed first');

  const proxy = await startProxy(srv.port);
  const b = await connected(proxy.url, { requestTimeout: 300, outboxMessages: 2 });
  proxy.cut();
  await waitUntil(() => b.state === 'reconnecting', 'b reconnecting');
  const waiting = [b.publish('chat', 'w1'), b.publish('chat', 'w2')];
  await assert.rejects(b.publish('chat', 'w3'), OutboxFullError);
  for (const p of waiting) {
    await assert.rejects(p, (/** @type {any} */ err) => err instanceof RequestError && err.reason === 'timeout' && !err.sent);
  }
  proxy.restore();
  await waitUntil(() => b.state === 'open', 'b open again', 5000);
  assert.equal((await b.history('chat')).offset, 1, 'a request rejected unsent was never applied');

  // On the wire when the connection goes: the outcome is unknown, and the error says so.
  const inFlight = b.publish('chat', 'in flight');
  b.drop('test');
  await assert.rejects(inFlight, (/** @type {any} */ err) => err instanceof RequestError && err.reason === 'disconnected' && err.sent);
  // Waiting when the client closes.
  const closing = b.publish('chat', 'never');
  b.close();
  await assert.rejects(closing, { name: 'RequestError', reason: 'closed', sent: false });
});

test('a temporary refusal is retried; a server without wsgate.v1 is left with an error', async () => {
  // The first subscribe is refused with 201 unavailable, the second accepted.
  let subscribes = 0;
  const url = await scriptedServer((req, send) => send(++subscribes === 1
    ? { id: req.id, error: { code: 201, message: 'broker busy' } }
    : { id: req.id, result: { epoch: 'e', offset: 3, recovered: false } }));
  const a = await connected(url);
  const rec = recorder(a, 'chat');
  const info = await rec.sub.ready;
  assert.deepEqual(rec.errors.map((e) => [e.code, e.temporary]), [[201, true]]);
  assert.deepEqual([info.epoch, info.offset, subscribes], ['e', 3, 2]);

  // Node's ws refuses a handshake without the subprotocol it offered; a browser accepts it with
  // protocol '', which this socket reports.
  class NoSubprotocol extends WebSocket {
    get protocol() {
      return '';
    }
  }
  const b = newClient(url, { WebSocket: NoSubprotocol });
  const error = nextEvent(b, 'error');
  const closed = nextEvent(b, 'close');
  let opened = false;
  b.on('open', () => { opened = true; });
  b.connect();
  assert.match(/** @type {any} */ (await error).message, /did not negotiate wsgate\.v1/);
  assert.deepEqual([/** @type {any} */ (await closed).willReconnect, opened], [false, false]);
});
