// The pub/sub client against a real wsgate gateway (JWT, -demo) in Node: connect with a token
// first, refresh by itself before short tokens expire, the token's channels subscribed by the
// server, names in presence, a forged token refused for good.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startWsgate, nextEvent, waitUntil, wsgateBinary, freeAddrs } from './server.js';
import { newClient, closeAll } from './pubsub-clients.js';

after(closeAll);

const dir = mkdtempSync(join(tmpdir(), 'wsgate-gateway-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const secretFile = join(dir, 'secret');
writeFileSync(secretFile, 'a-test-secret-of-at-least-32-bytes!!');

/**
 * A token minted by "wsgate token" with the test's secret.
 * @param {string[]} args
 */
function mint(args) {
  return execFileSync(wsgateBinary(), ['token', '-jwt-hmac-secret-file', secretFile, ...args], { encoding: 'utf8' }).trim();
}

test('JWT: connect first; short tokens refreshed before they expire; the token\'s channel subscribed by the server; info in presence', async () => {
  const srv = await startWsgate(['-jwt-hmac-secret-file', secretFile]);
  let minted = 0;
  const alice = newClient(srv.url, {
    getToken: async () => {
      minted++;
      return mint(['-user', 'alice', '-ttl', '3s', '-info', '{"name":"Alice"}', '-channels', '#alice']);
    },
  });
  /** @type {any[]} */
  const refreshed = [];
  alice.on('refreshed', (ev) => refreshed.push(ev));
  /** @type {any[]} */
  const serverPubs = [];
  alice.on('publication', (ev) => serverPubs.push(ev.publication));
  const subscribedEv = nextEvent(alice, 'subscribed');
  const connected = /** @type {Promise<any>} */ (nextEvent(alice, 'connected'));
  alice.connect();
  const c = await connected;
  assert.equal(c.user, 'alice');
  assert.ok(c.expiresIn > 0 && c.expiresIn <= 3, String(c.expiresIn));
  assert.deepEqual(c.subscribed, ['#alice']);
  const sub = /** @type {any} */ (await subscribedEv);
  assert.equal(sub.channel, '#alice');
  assert.equal(sub.info.server, true);
  assert.equal(alice.subscription('#alice')?.state, 'subscribed');

  // Bob, anonymous to alice, sees her name in presence.
  const bob = newClient(srv.url, { token: mint(['-user', 'bob', '-info', '{"name":"Bob"}']) });
  bob.connect();
  await alice.subscribe('chat', { presence: true }).ready;
  await bob.subscribe('chat').ready;
  const { clients } = await bob.presence('chat');
  assert.deepEqual(clients.map((cl) => [cl.user, cl.info]).sort(), [['alice', { name: 'Alice' }], ['bob', { name: 'Bob' }]]);

  // Three expiries later alice is still on her first connection, refreshed by herself.
  let closes = 0;
  alice.on('close', () => closes++);
  await sleep(7000);
  assert.equal(closes, 0, 'the connection was closed');
  assert.ok(refreshed.length >= 2, `${refreshed.length} refreshes`);
  // A refresh may be under way (its token minted, the server's answer not in yet): wait for it.
  if (minted === 2 + refreshed.length) await nextEvent(alice, 'refreshed');
  assert.equal(minted, 1 + refreshed.length);
  assert.deepEqual(await alice.publish('chat', 'still here'), { epoch: (await alice.history('chat')).epoch, offset: 1 });
});

test('a forged token is refused for good: unauthorized, no reconnect', async () => {
  const srv = await startWsgate(['-jwt-hmac-secret-file', secretFile]);
  const other = join(dir, 'other');
  writeFileSync(other, 'another-secret-another-secret-another');
  const forged = execFileSync(wsgateBinary(), ['token', '-jwt-hmac-secret-file', other, '-user', 'alice'], { encoding: 'utf8' }).trim();
  let asked = 0;
  const client = newClient(srv.url, { token: forged, getToken: () => { asked++; return forged; } });
  const unauthorized = /** @type {Promise<any>} */ (nextEvent(client, 'unauthorized'));
  client.connect();
  const published = client.publish('chat', 'never'); // waits for the connect, which is refused
  published.catch(() => {}); // checked below
  const ev = await unauthorized;
  assert.ok(ev.code === 109 || ev.code === 4001, String(ev.code));
  await waitUntil(() => client.state === 'closed', 'the client to stop');
  await assert.rejects(published, { name: 'RequestError', sent: false });
  await sleep(500);
  assert.equal(client.state, 'closed', 'it reconnected');
  assert.equal(asked, 0, 'getToken asked although the token was refused as forged, not expired');
});

test('-demo: a token for the name asked, with the name as info', async () => {
  const srv = await startWsgate(['-demo']);
  const getToken = async (/** @type {string} */ name) => {
    const res = await fetch(`${srv.pageURL}demo/token`, { method: 'POST', body: JSON.stringify({ name }) });
    assert.equal(res.status, 200);
    return /** @type {any} */ (await res.json()).token;
  };
  const carol = newClient(srv.url, { getToken: () => getToken('carol') });
  const connected = /** @type {Promise<any>} */ (nextEvent(carol, 'connected'));
  carol.connect();
  assert.equal((await connected).user, 'carol');
  await carol.subscribe('lobby').ready;
  const { clients } = await carol.presence('lobby');
  assert.deepEqual(clients.map((cl) => cl.info), [{ name: 'carol' }]);
});

test('the backend API subscribes, publishes to, unsubscribes and disconnects (4003, terminal) a connected user', async () => {
  const key = 'test-api-key-test-api-key-test-api-key';
  const keyFile = join(dir, 'api-key');
  writeFileSync(keyFile, key);
  const [apiAddr] = await freeAddrs(1);
  const srv = await startWsgate(['-jwt-hmac-secret-file', secretFile, '-api-key-file', keyFile, '-api-listen', apiAddr]);
  const api = async (/** @type {string} */ path, /** @type {object} */ body) => {
    const res = await fetch(`http://${apiAddr}/api/${path}`, {
      method: 'POST', headers: { Authorization: `apikey ${key}`, 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    assert.equal(res.status, 200, `${path}: ${res.status} ${await res.clone().text()}`);
    return /** @type {any} */ (await res.json());
  };
  const alice = newClient(srv.url, { getToken: () => mint(['-user', 'alice']) });
  /** @type {any[]} */
  const events = [];
  for (const type of ['subscribed', 'unsubscribed', 'publication', 'close']) {
    alice.on(/** @type {any} */ (type), (ev) => events.push(ev));
  }
  const connected = nextEvent(alice, 'connected');
  alice.connect();
  await connected;

  assert.deepEqual(await api('subscribe', { user: 'alice', channel: 'news' }), { connections: 1 });
  await waitUntil(() => events.some((e) => e.type === 'subscribed'), 'the subscribe push');
  assert.equal(alice.subscription('news')?.state, 'subscribed');
  await api('publish', { channel: 'news', data: { headline: 'hi' } });
  await waitUntil(() => events.some((e) => e.type === 'publication'), 'the publication');
  const pub = events.find((e) => e.type === 'publication').publication;
  assert.deepEqual([pub.channel, pub.offset, pub.data, pub.recovered], ['news', 1, { headline: 'hi' }, false]);
  await api('unsubscribe', { user: 'alice', channel: 'news' });
  await waitUntil(() => events.some((e) => e.type === 'unsubscribed'), 'the unsubscribe push');
  assert.equal(alice.subscription('news'), null);

  await api('disconnect', { user: 'alice', reason: 'banned' });
  await waitUntil(() => alice.state === 'closed', 'the client to stop');
  const close = events.find((e) => e.type === 'close');
  assert.deepEqual([close.code, close.reason, close.willReconnect], [4003, 'banned', false]);
});

test('a token not refreshed in time: the server closes 4501, and the client comes back with a fresh token from getToken', async () => {
  const config = join(dir, 'grace.yaml');
  writeFileSync(config, `auth:\n  refresh_grace: 200ms\n  jwt:\n    hmac_secret_file: ${JSON.stringify(secretFile)}\n`);
  const srv = await startWsgate(['-config', config]);
  let calls = 0;
  const client = newClient(srv.url, {
    getToken: async () => {
      calls++;
      if (calls === 2) {
        await sleep(3500); // the refresh's token comes too late: the identity lapses first
      }
      return mint(['-user', 'alice', '-ttl', calls <= 2 ? '2s' : '1m']);
    },
  });
  /** @type {any[]} */
  const closes = [];
  client.on('close', (ev) => closes.push(ev));
  let connects = 0;
  client.on('connected', () => connects++);
  client.connect();
  await waitUntil(() => closes.length === 1, 'the close 4501', 10_000);
  assert.deepEqual([closes[0].code, closes[0].willReconnect], [4501, true]);
  await waitUntil(() => connects === 2, 'the reconnect', 10_000);
  assert.equal(calls, 2, 'the reconnect waited for the token being fetched, and asked no other');
  assert.equal(client.state, 'open');
  await client.subscribe('chat').ready; // the new connection works
});
