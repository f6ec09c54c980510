// Several endpoints (the nodes of a cluster): the clients start at a random one, move to the next
// when theirs is gone, and re-subscribe there from their last position. Also the positions a
// clustered server may give: an empty epoch at offset 0, and a new epoch that starts beyond 1.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket, { WebSocketServer } from 'ws';
import { WsgateClient, nextEndpoint } from '../../cmd/wsgate/web/js/wsgate.js';
import { startWsgate, nextEvent, waitUntil } from './server.js';
import { startProxy } from './proxy.js';
import { newClient, closeAll, recorder } from './pubsub-clients.js';

after(closeAll);

/** A free loopback port with nothing listening: connections to it are refused. */
async function deadURL() {
  const proxy = await startProxy(1);
  await proxy.close();
  return proxy.url;
}

test('nextEndpoint: round robin, the endpoints that failed recently last, the oldest failure first among them', () => {
  assert.equal(nextEndpoint(0, [0, 0, 0], 100), 1);
  assert.equal(nextEndpoint(2, [0, 0, 0], 100), 0);
  assert.equal(nextEndpoint(0, [500, 500, 0], 100), 2, 'the one that just failed, and 1 that failed recently, go last');
  assert.equal(nextEndpoint(0, [500, 400, 300], 100), 2, 'all failed recently: the oldest failure');
  assert.equal(nextEndpoint(0, [500, 50, 300], 100), 1, 'a failure before recent is forgotten');
  assert.equal(nextEndpoint(0, [500], 100), 0, 'one endpoint: itself');
});

test('several URLs: the first endpoint is random, the next attempt goes to the next one', async () => {
  const urls = ['ws://127.0.0.1:1/a', 'ws://127.0.0.1:1/b', 'ws://127.0.0.1:1/c'];
  const a = new WsgateClient(urls, { WebSocket, random: () => 0.7 });
  assert.deepEqual([a.url, a.urls], [urls[2], urls]);
  assert.equal(new WsgateClient(urls, { WebSocket, random: () => 0 }).url, urls[0]);
  assert.equal(new WsgateClient(urls[1], { WebSocket }).url, urls[1], 'one URL as before');
  assert.throws(() => new WsgateClient([], { WebSocket }), RangeError);

  const live = await startWsgate();
  const dead = await deadURL();
  const client = newClient([dead, live.url], { random: () => 0 });
  const closed = nextEvent(client, 'close');
  const opened = nextEvent(client, 'open');
  client.connect();
  const [c, o] = /** @type {any[]} */ (await Promise.all([closed, opened]));
  assert.deepEqual([c.url, c.code, c.willReconnect], [dead, 1006, true]);
  assert.deepEqual([o.url, o.reconnected, client.url], [live.url, true, live.url]);
});

test('failover: the node in use is killed, the client moves to another, re-subscribes and goes on', async () => {
  const nodes = await Promise.all([startWsgate(), startWsgate(), startWsgate()]);
  const urls = nodes.map((n) => n.url);
  const client = newClient(urls);
  const rec = recorder(client, 'chat');
  /** @type {string[]} */
  const opened = [];
  client.on('open', (ev) => opened.push(ev.url));
  client.connect();
  await rec.sub.ready;
  const used = [];
  for (let round = 1; round <= 2; round++) {
    const node = nodes[urls.indexOf(client.url)];
    used.push(node);
    // Each node has a broker of its own: a publication on the node in use reaches the client.
    const pub = newClient(node.url);
    pub.connect();
    await pub.publish('chat', `on node ${node.port}`);
    await waitUntil(() => rec.pubs.length === round, `the publication of round ${round}`);
    pub.close();

    await node.stop('SIGKILL');
    await waitUntil(() => rec.subscribed.length === round + 1, `the re-subscribe on another node, round ${round}`, 10_000);
    assert.ok(!used.map((n) => n.url).includes(client.url), `moved to ${client.url}, a node still up`);
    const again = rec.subscribed[round];
    // Another node, another broker: recovery is refused plainly, the subscription is established.
    assert.deepEqual([again.resubscribed, again.recovered, again.since?.offset], [true, false, 1]);
  }
  assert.deepEqual(opened.slice(-1), [client.url]);
  const last = newClient(client.url);
  last.connect();
  await last.publish('chat', 'after the moves');
  await waitUntil(() => rec.pubs.length === 3, 'the publication on the last node');
  assert.deepEqual(rec.pubs.map((p) => p.data), [`on node ${used[0].port}`, `on node ${used[1].port}`, 'after the moves']);
  assert.deepEqual(rec.gaps, []);
});

test('recovery through another endpoint of the same broker: every missed publication once, in order', async () => {
  // Two endpoints in front of one wsgate stand for two nodes sharing a broker.
  const srv = await startWsgate();
  const [p1, p2] = await Promise.all([startProxy(srv.port), startProxy(srv.port)]);
  const client = newClient([p1.url, p2.url], { random: () => 0 });
  const rec = recorder(client, 'news');
  client.connect();
  await rec.sub.ready;
  const pub = newClient(srv.url);
  pub.connect();
  await pub.publish('news', 1);
  await waitUntil(() => rec.pubs.length === 1, 'one live publication');

  // The node is gone, and refuses new connections; the other one too until the four publications
  // are stored, so that all four are missed (else the client, back at once, gets some live).
  p2.cut();
  p1.cut();
  for (let i = 2; i <= 5; i++) {
    await pub.publish('news', i);
  }
  p2.restore();
  await waitUntil(() => rec.subscribed.length === 2, 'the re-subscribe through the other endpoint', 10_000);
  assert.equal(client.url, p2.url);
  await pub.publish('news', 6);
  await waitUntil(() => rec.pubs.length === 6, 'six publications');
  assert.deepEqual(rec.pubs.map((p) => [p.offset, p.data, p.recovered]),
    [[1, 1, false], [2, 2, true], [3, 3, true], [4, 4, true], [5, 5, true], [6, 6, false]]);
  assert.deepEqual({ ...rec.subscribed[1], epoch: '' }, {
    channel: 'news', epoch: '', offset: 5, since: { epoch: rec.subscribed[0].epoch, offset: 1 }, recovered: true, resubscribed: true, publications: 4, server: false,
  });
});

test('an empty epoch at offset 0, then a new epoch beyond 1: the first ones come from history, in order', async () => {
  /** @type {any[]} */
  const asked = [];
  let conns = 0;
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  after(() => wss.close());
  wss.on('connection', (ws) => {
    const n = ++conns;
    const send = (/** @type {object} */ msg) => ws.send(JSON.stringify(msg));
    const stored = (/** @type {number[]} */ offsets) => offsets.map((offset) => ({ offset, data: `d${offset}` }));
    ws.on('message', (m) => {
      const req = JSON.parse(String(m));
      asked.push([n, req.op, req.channel, req.since ?? null, req.limit ?? null]);
      if (req.op === 'subscribe' && n === 1) {
        // A clustered node: no epoch before the first publication.
        send({ id: req.id, result: { epoch: '', offset: 0, recovered: false } });
        if (req.channel === 'a') {
          send({ push: 'pub', channel: 'a', epoch: 'E', offset: 3, data: 'd3' }); // 1 and 2 missed
        } else {
          send({ push: 'gap', channel: 'b', epoch: 'F', offset: 2 }); // 1 and 2 not queued
        }
      } else if (req.op === 'history') {
        const epoch = req.channel === 'a' ? 'E' : 'F';
        send({ id: req.id, result: { epoch, offset: 3, complete: true, publications: stored([1, 2]) } });
        if (req.channel === 'a') {
          send({ push: 'pub', channel: 'a', epoch: 'E', offset: 4, data: 'd4' });
        }
      } else if (req.op === 'subscribe') {
        // The second connection: recovery from the empty position names the stream's first ones.
        send({ id: req.id, result: { epoch: 'G', offset: 2, recovered: true, publications: stored([1, 2]) } });
      }
    });
  });
  await new Promise((resolve) => wss.once('listening', resolve));
  const url = `ws://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (wss.address()).port}/`;

  const client = newClient(url);
  const a = recorder(client, 'a');
  const b = recorder(client, 'b');
  const c = recorder(client, 'c');
  client.connect();
  await waitUntil(() => a.pubs.length === 4 && b.pubs.length === 2 && c.subscribed.length === 1, 'the catch-ups');
  assert.deepEqual(a.pubs.map((p) => [p.epoch, p.offset, p.data, p.recovered]),
    [['E', 1, 'd1', true], ['E', 2, 'd2', true], ['E', 3, 'd3', false], ['E', 4, 'd4', false]]);
  assert.deepEqual(b.pubs.map((p) => [p.epoch, p.offset, p.recovered]), [['F', 1, true], ['F', 2, true]]);
  assert.deepEqual(c.sub.position, { epoch: '', offset: 0 });

  client.drop('test');
  await waitUntil(() => c.subscribed.length === 2 && c.pubs.length === 2, 'the recovery of c from the empty position');
  assert.deepEqual(c.subscribed[1], {
    channel: 'c', epoch: 'G', offset: 2, since: { epoch: '', offset: 0 }, recovered: true, resubscribed: true, publications: 2, server: false,
  });
  assert.deepEqual(c.pubs.map((p) => [p.epoch, p.offset, p.recovered]), [['G', 1, true], ['G', 2, true]]);
  assert.deepEqual(asked.filter((r) => r[1] === 'history').map((r) => r.slice(2)),
    [['a', { epoch: 'E', offset: 0 }, 2], ['b', { epoch: 'F', offset: 0 }, 2]]);
  assert.deepEqual(asked.find((r) => r[0] === 2 && r[2] === 'c')?.[3], { epoch: '', offset: 0 });
  assert.deepEqual([a.gaps, b.gaps, c.gaps], [[], [], []]);
});

test('a real server recovers from the empty position: every publication of the channel', async () => {
  const srv = await startWsgate();
  const pub = newClient(srv.url);
  pub.connect();
  for (const d of ['x', 'y', 'z']) {
    await pub.publish('fresh', d);
  }
  const client = newClient(srv.url);
  /** @type {any[]} */
  const got = [];
  const rec = client.subscribe('fresh', { since: { epoch: '', offset: 0 }, onPublication: (p) => got.push(p) });
  client.connect();
  const info = await rec.ready;
  assert.deepEqual([info.recovered, info.offset, info.publications], [true, 3, 3]);
  assert.deepEqual(got.map((p) => [p.offset, p.data, p.recovered]), [[1, 'x', true], [2, 'y', true], [3, 'z', true]]);
});
