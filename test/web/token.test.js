// The pub/sub client's gateway side, scheduled by fake timers against a scripted in-memory
// WebSocket: connect first with the token, refresh a little before the expiry and at once on the
// server's refresh push, what each close code and connect error leads to, rpc, channel tokens,
// and the subscriptions the server makes (at connect, by push) and ends.

import { test, mock, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as tick } from 'node:timers/promises';
import { PubSubClient, ErrorCode, refreshDelay } from '../../cmd/wsgate/web/js/wsgate-pubsub.js';
import { CloseCode } from '../../cmd/wsgate/web/js/wsgate.js';
import { refreshLeadMax } from '../../cmd/wsgate/web/js/wsgate-token.js';

/** A WebSocket the test plays the server of: it records what the client sends. */
class FakeSocket {
  /** @type {FakeSocket[]} every socket made, in order */
  static all = [];
  readyState = 0;
  binaryType = 'blob';
  protocol = '';
  /** @type {any[]} the frames sent, parsed */
  sent = [];
  /** @type {Map<string, ((ev: any) => void)[]>} */
  #listeners = new Map();

  /** @param {string} url */
  constructor(url) {
    this.url = url;
    FakeSocket.all.push(this);
  }

  /**
   * @param {string} type
   * @param {(ev: any) => void} fn
   */
  addEventListener(type, fn) {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), fn]);
  }

  /**
   * @param {string} type
   * @param {any} ev
   */
  emit(type, ev = {}) {
    (this.#listeners.get(type) ?? []).forEach((fn) => fn(ev));
  }

  /** @param {string} data */
  send(data) {
    assert.equal(this.readyState, 1, 'sent on a socket that is not open');
    this.sent.push(JSON.parse(data));
  }

  /**
   * The client closes: the server answers with the same code.
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = 1005, reason = '') {
    if (this.readyState >= 2) {
      return;
    }
    this.readyState = 2;
    this.closedWith = code;
    queueMicrotask(() => this.serverClose(code, reason));
  }

  open() {
    this.readyState = 1;
    this.protocol = 'wsgate.v1';
    this.emit('open');
  }

  /** @param {object} msg a reply or push */
  receive(msg) {
    this.emit('message', { data: JSON.stringify(msg) });
  }

  /**
   * Answers the last request of op with result (or error, when given an error object).
   * @param {string} op
   * @param {any} result
   */
  reply(op, result) {
    const req = this.last(op);
    assert.ok(req, `no ${op} request; sent: ${JSON.stringify(this.sent)}`);
    this.receive(result && result.code && result.message ? { id: req.id, error: result } : { id: req.id, result });
  }

  /** @param {string} op */
  last(op) {
    return this.sent.filter((f) => f.op === op).at(-1);
  }

  /**
   * @param {number} code
   * @param {string} [reason]
   */
  serverClose(code, reason = '') {
    if (this.readyState === 3) {
      return;
    }
    this.readyState = 3;
    this.emit('close', { code, reason, wasClean: true });
  }
}

/** Lets promises and queued microtasks run (fake timers do not cover setImmediate). */
async function settle() {
  for (let i = 0; i < 5; i++) {
    await tick();
  }
}

/** @type {PubSubClient[]} */
let clients = [];

/**
 * A client on fake sockets and fake timers, with a getToken that counts its calls.
 * @param {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').PubSubClientOptions} [options]
 */
function fakeClient(options = {}) {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 });
  FakeSocket.all = [];
  let n = 0;
  const tokens = /** @type {string[]} */ ([]);
  const client = new PubSubClient('ws://gate.test/ws', {
    WebSocket: /** @type {any} */ (FakeSocket), random: () => 0.5, minDelay: 100, maxDelay: 1000, pingTimeout: 0,
    getToken: async () => {
      const t = `token-${++n}`;
      tokens.push(t);
      return t;
    },
    ...options,
  });
  clients.push(client);
  /** @type {Event[]} */
  const events = [];
  for (const type of ['connected', 'unauthorized', 'refreshed', 'subscribed', 'unsubscribed', 'publication', 'close', 'error']) {
    client.addEventListener(type, (ev) => events.push(ev));
  }
  return { client, tokens, events, socket: () => /** @type {FakeSocket} */ (FakeSocket.all.at(-1)) };
}

afterEach(() => {
  clients.forEach((c) => c.close());
  clients = [];
  mock.timers.reset();
});

/**
 * Opens the client's latest socket and accepts its connect.
 * @param {ReturnType<typeof fakeClient>} f
 * @param {object} [result]
 */
async function connectOK(f, result = { client: '7', user: 'alice', expires_in: 60 }) {
  await settle(); // beforeConnect: getToken
  const s = f.socket();
  s.open();
  s.reply('connect', result);
  await settle();
  return s;
}

test('refreshDelay: a tenth of the life before the expiry, at most 30 s, plus as much again at random', () => {
  assert.equal(refreshDelay(3600, () => 0), 3600_000 - refreshLeadMax);
  assert.equal(refreshDelay(3600, () => 0.999999), 3600_000 - 2 * refreshLeadMax + 0); // 30 to 60 s before
  assert.equal(refreshDelay(10, () => 0), 9000);
  assert.equal(refreshDelay(10, () => 0.5), 8500);
  assert.equal(refreshDelay(0, () => 0), 0);
  for (let i = 0; i < 100; i++) {
    const d = refreshDelay(120);
    assert.ok(d > 96_000 && d <= 108_000, String(d));
  }
});

test('connect goes first, with the token, and nothing else before its reply; then the subscriptions and the waiting requests', async () => {
  const f = fakeClient({ token: 'given' });
  f.client.subscribe('chat');
  f.client.connect();
  const published = f.client.publish('chat', 'early');
  await settle();
  assert.deepEqual(f.tokens, [], 'the token option needs no getToken');
  const s = f.socket();
  s.open();
  assert.deepEqual(s.sent.map((m) => m.op), ['connect']);
  assert.equal(s.sent[0].token, 'given');
  const more = f.client.publish('chat', 'while connecting');
  await settle();
  assert.deepEqual(s.sent.map((m) => m.op), ['connect'], 'a request went before the connect reply');
  s.reply('connect', { client: '7', user: 'alice', expires_in: 60 });
  await settle();
  assert.deepEqual(s.sent.map((m) => m.op), ['connect', 'subscribe', 'publish', 'publish']);
  const connected = /** @type {any} */ (f.events.find((e) => e.type === 'connected'));
  assert.deepEqual({ client: connected.client, user: connected.user, expiresIn: connected.expiresIn, subscribed: connected.subscribed },
    { client: '7', user: 'alice', expiresIn: 60, subscribed: [] });
  s.receive({ id: s.sent[2].id, result: { epoch: 'e', offset: 1 } });
  s.receive({ id: s.sent[3].id, result: { epoch: 'e', offset: 2 } });
  assert.deepEqual(await published, { epoch: 'e', offset: 1 });
  assert.deepEqual(await more, { epoch: 'e', offset: 2 });
});

test('without token or getToken no connect is sent: the client works as before', async () => {
  const f = fakeClient({ getToken: undefined });
  f.client.subscribe('chat');
  f.client.connect();
  await settle();
  f.socket().open();
  assert.deepEqual(f.socket().sent.map((m) => m.op), ['subscribe']);
});

test('the token is refreshed a little before it expires, with a fresh one from getToken, and again after', async () => {
  const f = fakeClient();
  f.client.connect();
  const s = await connectOK(f, { client: '7', expires_in: 100 }); // refresh 10 to 20 s early: random 0.5 → 85 s
  assert.deepEqual(f.tokens, ['token-1']);
  assert.equal(s.last('connect').token, 'token-1');
  mock.timers.tick(84_999);
  await settle();
  assert.equal(s.last('refresh'), undefined, 'refreshed too early');
  mock.timers.tick(1);
  await settle();
  assert.deepEqual(s.last('refresh').token, 'token-2');
  s.reply('refresh', { expires_in: 10 }); // the next at 10 - 1.5 = 8.5 s
  await settle();
  assert.equal(/** @type {any} */ (f.events.find((e) => e.type === 'refreshed')).expiresIn, 10);
  mock.timers.tick(8499);
  await settle();
  assert.equal(s.sent.filter((m) => m.op === 'refresh').length, 1);
  mock.timers.tick(1);
  await settle();
  assert.equal(s.last('refresh').token, 'token-3');
  assert.equal(FakeSocket.all.length, 1, 'a refresh reconnected');
});

test('a refresh push refreshes at once; a refresh refused for now is tried again, with backoff', async () => {
  const f = fakeClient();
  f.client.connect();
  const s = await connectOK(f, { client: '7', expires_in: 3600 });
  s.receive({ push: 'refresh' });
  s.receive({ push: 'refresh' }); // one refresh at a time
  await settle();
  assert.equal(s.sent.filter((m) => m.op === 'refresh').length, 1);
  s.reply('refresh', { code: ErrorCode.INTERNAL, message: 'busy' });
  await settle();
  assert.equal(f.events.filter((e) => e.type === 'error').length, 1);
  mock.timers.tick(100); // backoff attempt 1: below 100 ms
  await settle();
  assert.equal(s.sent.filter((m) => m.op === 'refresh').length, 2);
  assert.equal(s.last('refresh').token, 'token-3');
  s.reply('refresh', { expires_in: 3600 });
  await settle();
  assert.equal(f.events.filter((e) => e.type === 'refreshed').length, 1);
});

test('close 4501: reconnect with a fresh token from getToken, asked before the socket opens', async () => {
  const f = fakeClient({ token: 'given' });
  f.client.connect();
  const s = await connectOK(f);
  s.serverClose(CloseCode.TOKEN_EXPIRED, 'token expired');
  await settle();
  assert.equal(f.client.state, 'reconnecting');
  mock.timers.tick(1000);
  await settle();
  assert.deepEqual(f.tokens, ['token-1'], 'getToken is asked before the dial');
  const s2 = f.socket();
  assert.notEqual(s2, s);
  s2.open();
  assert.equal(s2.last('connect').token, 'token-1');
});

test('a lost connection reconnects with the same token while it has not expired, with a fresh one after', async () => {
  const f = fakeClient({ token: 'given' });
  f.client.connect();
  const s = await connectOK(f, { client: '7', expires_in: 60 });
  s.serverClose(CloseCode.ABNORMAL);
  mock.timers.tick(1000);
  await settle();
  f.socket().open();
  assert.equal(f.socket().last('connect').token, 'given');
  assert.deepEqual(f.tokens, []);
  f.socket().reply('connect', { client: '8', expires_in: 1 });
  await settle();
  f.client.drop('cut'); // refresh is due at 0.85 s; the expiry passes while disconnected
  mock.timers.tick(1000);
  await settle();
  assert.deepEqual(f.tokens, ['token-1']);
  f.socket().open();
  assert.equal(f.socket().last('connect').token, 'token-1');
});

for (const code of [CloseCode.UNAUTHORIZED, CloseCode.CONNECT_TIMEOUT, CloseCode.DISCONNECTED]) {
  test(`close ${code} is terminal: no reconnect${code === 4001 ? ', and an unauthorized event' : ''}`, async () => {
    const f = fakeClient();
    f.client.connect();
    const s = await connectOK(f);
    s.serverClose(code, 'bye');
    await settle();
    mock.timers.tick(60_000);
    await settle();
    assert.equal(f.client.state, 'closed');
    assert.equal(FakeSocket.all.length, 1);
    const close = /** @type {any} */ (f.events.find((e) => e.type === 'close'));
    assert.equal(close.code, code);
    assert.equal(close.willReconnect, false);
    const unauthorized = f.events.filter((e) => e.type === 'unauthorized').map((e) => /** @type {any} */ (e).code);
    assert.deepEqual(unauthorized, code === CloseCode.UNAUTHORIZED ? [4001] : []);
  });
}

test('close 4503 (connection limit): reconnect after a backoff delay', async () => {
  const f = fakeClient();
  f.client.connect();
  const s = await connectOK(f);
  s.serverClose(CloseCode.CONNECTION_LIMIT, 'too many');
  await settle();
  assert.equal(f.client.state, 'reconnecting');
  assert.equal(FakeSocket.all.length, 1);
  mock.timers.tick(100); // attempt 1 waits below minDelay
  await settle();
  assert.equal(FakeSocket.all.length, 2);
});

test('connect refused with 110: a fresh token from getToken, and connect again, once; 110 again is terminal', async () => {
  const f = fakeClient({ token: 'old' });
  f.client.connect();
  await settle();
  const s = f.socket();
  s.open();
  s.reply('connect', { code: ErrorCode.TOKEN_EXPIRED, message: 'token expired' });
  await settle();
  assert.deepEqual(s.sent.filter((m) => m.op === 'connect').map((m) => m.token), ['old', 'token-1']);
  s.reply('connect', { code: ErrorCode.TOKEN_EXPIRED, message: 'token expired' });
  await settle();
  assert.equal(s.closedWith, CloseCode.UNAUTHORIZED);
  assert.deepEqual(f.events.filter((e) => e.type === 'unauthorized').map((e) => /** @type {any} */ (e).code), [110]);
  mock.timers.tick(60_000);
  await settle();
  assert.equal(f.client.state, 'closed');
  assert.equal(FakeSocket.all.length, 1);
});

test('connect refused with 109 is terminal; a later connect() asks getToken first', async () => {
  const f = fakeClient({ token: 'bad' });
  f.client.connect();
  await settle();
  f.socket().open();
  f.socket().reply('connect', { code: ErrorCode.UNAUTHORIZED, message: 'unknown user' });
  await settle();
  assert.equal(f.client.state, 'closed');
  const ev = /** @type {any} */ (f.events.find((e) => e.type === 'unauthorized'));
  assert.deepEqual([ev.code, ev.reason], [109, 'unknown user']);
  f.client.connect();
  await settle();
  assert.deepEqual(f.tokens, ['token-1']);
});

test('a getToken that fails fails the attempt: error event, then a reconnect with backoff', async (t) => {
  // No socket was made, so no handshake was refused: the client must not probe the server (a real
  // HTTP request, whose time made this test fail one run in five before the client stopped).
  let probes = 0;
  t.mock.method(globalThis, 'fetch', async () => { probes++; throw new Error('no network in this test'); });
  let fail = true;
  const f = fakeClient({ getToken: async () => { if (fail) throw new Error('backend down'); return 'ok'; } });
  f.client.connect();
  await settle();
  assert.equal(FakeSocket.all.length, 0, 'dialed without a token');
  assert.equal(probes, 0, 'probed the server after a getToken failure');
  assert.equal(f.client.state, 'reconnecting');
  assert.match(/** @type {any} */ (f.events.find((e) => e.type === 'error')).message, /backend down/);
  fail = false;
  mock.timers.tick(100);
  await settle();
  f.socket().open();
  assert.equal(f.socket().last('connect').token, 'ok');
});

test('rpc sends method and data and resolves with the result as it is', async () => {
  const f = fakeClient();
  f.client.connect();
  const s = await connectOK(f);
  const r = f.client.rpc('users.get', { id: 1 });
  const n = f.client.rpc('nothing');
  await settle();
  const [a, b] = s.sent.filter((m) => m.op === 'rpc');
  assert.deepEqual([a.method, a.data, b.method, 'data' in b], ['users.get', { id: 1 }, 'nothing', false]);
  s.receive({ id: a.id, result: { name: 'Alice' } });
  s.receive({ id: b.id, result: null });
  assert.deepEqual(await r, { name: 'Alice' });
  assert.equal(await n, null);
  const refused = f.client.rpc('x');
  await settle();
  s.reply('rpc', { code: ErrorCode.NOT_AVAILABLE, message: 'no rpc' });
  await assert.rejects(refused, { name: 'PubSubError', code: 112, op: 'rpc' });
});

test('channel tokens: from getToken before the subscribe, and again once on 110', async () => {
  const f = fakeClient();
  let n = 0;
  f.client.subscribe('private:a', { getToken: async (ch) => `${ch}#${++n}` });
  f.client.subscribe('private:b', { token: 'static' });
  f.client.connect();
  const s = await connectOK(f);
  const subs = () => s.sent.filter((m) => m.op === 'subscribe');
  assert.deepEqual(subs().map((m) => [m.channel, m.token]), [['private:b', 'static'], ['private:a', 'private:a#1']]);
  s.receive({ id: subs()[1].id, error: { code: ErrorCode.TOKEN_EXPIRED, message: 'expired' } });
  await settle();
  assert.deepEqual(subs().at(-1), { ...subs().at(-1), channel: 'private:a', token: 'private:a#2' });
  s.receive({ id: subs().at(-1).id, error: { code: ErrorCode.TOKEN_EXPIRED, message: 'expired' } });
  await settle();
  assert.equal(subs().length, 3, 'a second 110 is not retried');
  assert.equal(f.client.subscription('private:a'), null);
});

test("the server's subscriptions: events, not resubscribed by the client, recovered from history after a reconnect, ended by push", async () => {
  const f = fakeClient();
  const mine = f.client.subscribe('mine', { onUnsubscribed: (ch) => f.events.push(new Event(`mine-ended:${ch}`)) });
  f.client.connect();
  const s = await connectOK(f, { client: '7', user: 'alice', subscribed: [{ channel: '#alice', epoch: 'e', offset: 3 }, { channel: 'mine', epoch: 'm', offset: 0 }] });
  assert.deepEqual(s.sent.filter((m) => m.op === 'subscribe'), [], 'the client subscribed what the server had');
  const subscribed = f.events.filter((e) => e.type === 'subscribed').map((e) => /** @type {any} */ (e));
  assert.deepEqual(subscribed.map((e) => [e.channel, e.info.server, e.info.offset, e.subscription.state]), [['#alice', true, 3, 'subscribed']]);
  assert.equal(mine.state, 'subscribed');
  s.receive({ push: 'pub', channel: '#alice', epoch: 'e', offset: 4, data: 'hi' });
  const pubs = () => f.events.filter((e) => e.type === 'publication').map((e) => /** @type {any} */ (e).publication);
  assert.deepEqual(pubs().map((p) => [p.channel, p.offset, p.data]), [['#alice', 4, 'hi']]);

  // A reconnect: the server subscribes #alice again (its top is now 6) and mine no more.
  s.serverClose(CloseCode.ABNORMAL);
  mock.timers.tick(1000);
  await settle();
  const s2 = f.socket();
  s2.open();
  s2.reply('connect', { client: '8', subscribed: [{ channel: '#alice', epoch: 'e', offset: 6 }] });
  await settle();
  assert.deepEqual(s2.sent.filter((m) => m.op === 'subscribe').map((m) => m.channel), ['mine'], 'only the client\'s own is subscribed by the client');
  const h = s2.last('history');
  assert.deepEqual([h.channel, h.since], ['#alice', { epoch: 'e', offset: 4 }]);
  s2.reply('history', { epoch: 'e', offset: 6, complete: true, publications: [{ offset: 5, data: 'x' }, { offset: 6, data: 'y' }] });
  await settle();
  assert.deepEqual(pubs().map((p) => [p.offset, p.recovered]), [[4, false], [5, true], [6, true]]);

  // A subscribe push on the live connection, and an unsubscribe push.
  s2.receive({ push: 'subscribe', channel: 'news', epoch: 'n', offset: 10 });
  assert.deepEqual(f.client.subscription('news')?.position, { epoch: 'n', offset: 10 });
  s2.receive({ push: 'unsubscribe', channel: '#alice' });
  assert.equal(f.client.subscription('#alice'), null);
  assert.deepEqual(f.events.filter((e) => e.type === 'unsubscribed').map((e) => /** @type {any} */ (e).channel), ['#alice']);
  s2.receive({ push: 'unsubscribe', channel: 'mine' });
  assert.ok(f.events.some((e) => e.type === 'mine-ended:mine'));
  assert.equal(mine.state, 'unsubscribed');
});
