// Several endpoints against a real cluster: three wsgate processes embedding a clustered NATS
// server (one JetStream stream, three replicas). A client given the three URLs loses its node to
// kill -9 while another node publishes; it moves to a surviving node and recovers there, so it
// ends with every publication once, in offset order. The other nodes drop the dead node's
// connection from presence. A page in headless Chromium, with /js/wsgate-pubsub.js and the
// browser's own WebSocket, follows the channel through the same kill.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer } from 'node:http';
import { PubSubError, ErrorCode } from '../../cmd/wsgate/web/js/wsgate-pubsub.js';
import { startCluster, nextEvent, waitUntil } from './server.js';
import { newClient, closeAll, recorder } from './pubsub-clients.js';
import { launchChromium, openPage } from './chromium.js';

after(closeAll);

const total = 100; // publications, one every 50 ms
const killAt = 30; // the subscriber's node is killed once this many are acknowledged

/**
 * Publishes data on channel through client, again while the cluster answers 201 (unavailable: a
 * stream leader being elected after the kill), for up to 20 s. A 201 may hide a stored
 * publication: the test compares what it got with the stream, not with what was sent.
 * @param {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').PubSubClient} client
 * @param {string} channel
 * @param {unknown} data
 */
async function publishRetrying(client, channel, data) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      return await client.publish(channel, data);
    } catch (err) {
      if (!(err instanceof PubSubError && err.code === ErrorCode.UNAVAILABLE) || Date.now() > deadline) {
        throw err;
      }
      await sleep(100);
    }
  }
}

test('a real cluster: the subscriber\'s node is killed (-9); in Node and in Chromium it moves, recovers every publication once, in order', async (t) => {
  const t0 = Date.now();
  // The browser's page comes from a site of its own, as an application's would, allowed by the
  // nodes: a page that a node serves may connect to that node only (CSP connect-src 'self').
  const site = createServer((_, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>app</title>'));
  await new Promise((resolve) => site.listen(0, '127.0.0.1', () => resolve(undefined)));
  t.after(() => site.close());
  const origin = `http://127.0.0.1:${/** @type {import('node:net').AddressInfo} */ (site.address()).port}`;
  const nodes = await startCluster(3, ['-presence-ttl', '1s', '-allowed-origins', origin]);
  const took = () => `${Date.now() - t0} ms`;
  const urls = nodes.map((n) => n.url);
  const [other, publishing, doomed] = nodes;

  // A watcher on a surviving node, subscribed first: its second join is the subscriber's.
  const watcher = newClient(publishing.url);
  const watched = recorder(watcher, 'feed', { presence: true });
  watcher.connect();
  await watched.sub.ready;
  await waitUntil(() => watched.presence.length === 1, 'the watcher\'s own join');

  // The subscriber starts on the last URL (random 0.99), then round robin: the first. The fixed
  // 400 ms reconnect delay leaves several publications to recover.
  const client = newClient(urls, { random: () => 0.99, minDelay: 400, maxDelay: 400 });
  const rec = recorder(client, 'feed', { presence: true });
  /** @type {string[]} */
  const opened = [];
  let reopenedAt = 0; // when the connection on a surviving node opened: the subscribe goes out then
  client.on('open', (ev) => {
    opened.push(ev.url);
    reopenedAt = Date.now();
  });
  client.connect();
  await rec.sub.ready;
  assert.equal(client.url, doomed.url);
  await waitUntil(() => watched.presence.length === 2, 'the subscriber\'s join, seen on another node');
  const doomedConn = watched.presence[1].replace(/^join /, '');
  assert.match(watched.presence[1], /^join \S+:\d+$/, 'a connection of the cluster is named node:number');

  // The browser's client, with the same URLs and delays, its module from a surviving node.
  const browser = await launchChromium();
  t.after(() => browser.close());
  const page = await openPage(browser.context, t, `${origin}/`);
  await page.evaluate(async ([urls, module]) => {
    const { PubSubClient } = await import(module);
    const w = /** @type {any} */ (window);
    w.pubs = [];
    w.subscribed = [];
    w.client = new PubSubClient(urls, { random: () => 0.99, minDelay: 400, maxDelay: 400 });
    const sub = w.client.subscribe('feed', {
      onPublication: (/** @type {any} */ p) => w.pubs.push(p),
      onSubscribed: (/** @type {any} */ info) => w.subscribed.push(info),
    });
    w.client.connect();
    await sub.ready;
  }, [urls, `${other.pageURL}js/wsgate-pubsub.js`]);
  const inBrowser = async () => /** @type {{pubs: any[], subscribed: any[], url: string}} */ (await page.evaluate(() => {
    const w = /** @type {any} */ (window);
    return { pubs: w.pubs, subscribed: w.subscribed, url: w.client.url };
  }));
  assert.equal((await inBrowser()).url, doomed.url);

  const publisher = newClient(publishing.url);
  publisher.connect();
  await nextEvent(publisher, 'open');
  /** @type {Map<number, string>} offset → data, of the acknowledged publications */
  const acked = new Map();
  /** @type {Map<number, number>} offset → when acknowledged, of those after the kill */
  const ackedAfterKill = new Map();
  let killedAt = 0;
  /** @type {Promise<number> | undefined} ms from the kill to the leave (polled every 20 ms) */
  let leave;
  const start = Date.now();
  for (let i = 1; i <= total; i++) {
    await sleep(start + i * 50 - Date.now());
    const data = `p${i}`;
    const pos = await publishRetrying(publisher, 'feed', data);
    acked.set(pos.offset, data);
    if (killedAt) {
      ackedAfterKill.set(pos.offset, Date.now());
    }
    if (i === killAt) {
      await waitUntil(() => rec.pubs.length >= killAt, 'the first publications, live');
      for (let tries = 0; (await inBrowser()).pubs.length < killAt; tries++) {
        assert.ok(tries < 250, 'the first publications, live in the browser');
        await sleep(20);
      }
      killedAt = Date.now();
      await doomed.stop('SIGKILL');
      leave = waitUntil(() => watched.presence.includes(`leave ${doomedConn}`), 'the leave of the dead node\'s connection', 5000)
        .then(() => Date.now() - killedAt);
      leave.catch(() => {}); // awaited below, after the publications
    }
  }
  const top = Math.max(...acked.keys());
  await waitUntil(() => rec.pubs.length >= top, `every publication up to ${top} on the new node`, 20_000);
  const leaveAfter = await leave;
  for (let tries = 0; (await inBrowser()).pubs.length < top; tries++) {
    assert.ok(tries < 1000, `every publication up to ${top} in the browser`);
    await sleep(20);
  }
  await sleep(200); // anything delivered twice would come now

  // It moved to a surviving node, once, and re-subscribed there recovering from its last position.
  assert.deepEqual(opened, [doomed.url, other.url]);
  assert.equal(rec.subscribed.length, 2);
  const again = rec.subscribed[1];
  assert.equal(again.resubscribed, true);
  assert.equal(again.recovered, true, 'recovered from the last position, through another node');
  // Before the first publication the cluster names no epoch (''): the stream's comes with it.
  const epoch = rec.pubs[0].epoch;
  assert.deepEqual([rec.subscribed[0].epoch, rec.subscribed[0].offset], ['', 0]);
  assert.equal(again.since?.epoch, epoch);

  // Every publication of the stream once, in offset order, as the stream has it.
  const history = await watcher.history('feed', { since: { epoch, offset: 0 }, limit: 1000 });
  assert.equal(history.complete, true);
  assert.deepEqual(rec.pubs.map((p) => [p.epoch, p.offset, p.data]),
    history.publications.map((p) => [history.epoch, p.offset, p.data]));
  assert.deepEqual(rec.pubs.map((p) => p.offset), Array.from({ length: rec.pubs.length }, (_, i) => i + 1));
  for (const [offset, data] of acked) {
    assert.equal(rec.pubs[offset - 1].data, data, `the acknowledged publication at offset ${offset}`);
  }
  // Those made while it moved came from history, the others live. (When the killed node led the
  // stream, publishing waits for the election, and there may be none.)
  const recovered = rec.pubs.filter((p) => p.recovered).map((p) => p.offset);
  const since = again.since?.offset ?? 0;
  assert.deepEqual(recovered, Array.from({ length: again.publications }, (_, i) => since + 1 + i));
  assert.equal(since, killAt, 'the last publication delivered before the kill');
  const moving = [...ackedAfterKill].filter(([, at]) => at < reopenedAt).map(([offset]) => offset);
  assert.deepEqual(moving, recovered.slice(0, moving.length), 'the publications acknowledged while it moved are recovered');
  assert.deepEqual([rec.gaps, watched.gaps, watched.errors], [[], [], []]);
  // A recovering subscribe may meet the election of a new stream leader: 201, and it is retried.
  assert.deepEqual(rec.errors.filter((e) => !(e instanceof PubSubError && e.code === ErrorCode.UNAVAILABLE)), []);

  // The dead node's connection left the presence of the survivors within 1.2 × the TTL plus a
  // round (1.3 s), with some slack for a loaded machine.
  assert.ok(leaveAfter < 3000, `the leave came ${leaveAfter} ms after the kill`);
  assert.equal(watched.presence.filter((p) => p === `leave ${doomedConn}`).length, 1);

  // The browser went through the same.
  const b = await inBrowser();
  assert.equal(b.url, other.url);
  assert.deepEqual(b.pubs.map((p) => [p.epoch, p.offset, p.data]), history.publications.map((p) => [history.epoch, p.offset, p.data]));
  assert.deepEqual(b.subscribed.map((s) => [s.resubscribed, s.recovered, s.since?.offset]), [[false, false, undefined], [true, true, killAt]]);
  assert.deepEqual(b.pubs.filter((p) => p.recovered).map((p) => p.offset),
    Array.from({ length: b.subscribed[1].publications }, (_, i) => killAt + 1 + i));

  assert.ok(rec.presence.filter((p) => p.startsWith('join ')).length >= 2, `the subscriber's own joins, on both nodes: ${rec.presence}`);
  t.diagnostic(`${rec.pubs.length} publications, ${again.publications} recovered after the move (${moving.length} acknowledged while it moved), ` +
    `${rec.errors.length} subscribes refused with 201; in the browser ${b.subscribed[1].publications} recovered; leave seen ${leaveAfter} ms after the kill; ${took()} in all`);
});
