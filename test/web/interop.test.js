// Interop: a real wsgate process driven by an independent implementation, Node's ws package.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import WebSocket from 'ws';
import { startWsgate, stopAll, waitUntil } from './server.js';

after(stopAll);

const MiB = 1 << 20;
/** @type {import('./server.js').Wsgate} */
let big; // room for 1 MiB messages (read limit 2 MiB, send queue 4 MiB) and 1000 pipelined ones
/** @type {import('./server.js').Wsgate} */
let small; // read limit 1 KiB

before(async () => {
  // The send queue holds a reply to every message of the 1000 pipelined below, so that the test of
  // ordering never depends on whether the server reads faster than it writes (a server that did
  // closed such a burst as a slow consumer, 1013, with a queue of 256 messages).
  big = await startWsgate(['-read-limit', String(2 * MiB), '-send-queue-bytes', String(4 * MiB), '-send-queue-messages', '2048']);
  small = await startWsgate(['-read-limit', '1024']);
});

/**
 * An open ws connection to url; closed (without waiting) at the end of the test.
 * @param {import('node:test').TestContext} t
 * @param {string} url
 * @param {WebSocket.ClientOptions & {protocols?: string[]}} [opts]
 */
async function dial(t, url, opts = {}) {
  const { protocols, ...options } = opts;
  const ws = new WebSocket(url, protocols, options);
  t.after(() => ws.terminate());
  await once(ws, 'open', { signal: AbortSignal.timeout(5000) });
  return ws;
}

/**
 * The next message on ws.
 * @param {WebSocket} ws
 * @returns {Promise<{data: Buffer, binary: boolean}>}
 */
async function nextMessage(ws) {
  const [data, binary] = await once(ws, 'message', { signal: AbortSignal.timeout(5000) });
  return { data, binary };
}

/**
 * The close code and reason ws ends with.
 * @param {WebSocket} ws
 * @returns {Promise<{code: number, reason: string}>}
 */
async function closeOf(ws) {
  const [code, reason] = await once(ws, 'close', { signal: AbortSignal.timeout(10_000) });
  return { code, reason: reason.toString() };
}

const done = Buffer.from(' done');

test('text is answered as text, binary as binary', async (t) => {
  const ws = await dial(t, big.url);
  ws.send('Hello!');
  assert.deepEqual(await nextMessage(ws), { data: Buffer.from('Hello! done'), binary: false });
  ws.send('你好');
  assert.equal((await nextMessage(ws)).data.toString(), '你好 done');
  const bin = Buffer.from([0, 0xff, 0x80, 0x0a]);
  ws.send(bin);
  assert.deepEqual(await nextMessage(ws), { data: Buffer.concat([bin, done]), binary: true });
  ws.send(Buffer.alloc(0));
  assert.deepEqual(await nextMessage(ws), { data: done, binary: true });
  ws.send('');
  assert.deepEqual(await nextMessage(ws), { data: done, binary: false });
});

test('1 MiB messages, text and binary, come back byte for byte', async (t) => {
  const ws = await dial(t, big.url);
  const bin = randomBytes(MiB);
  ws.send(bin);
  let m = await nextMessage(ws);
  assert.equal(m.binary, true);
  assert.ok(m.data.equals(Buffer.concat([bin, done])), 'binary echo differs');
  const text = randomBytes(MiB / 2).toString('hex'); // 1 MiB of ASCII
  ws.send(text);
  m = await nextMessage(ws);
  assert.equal(m.binary, false);
  assert.equal(m.data.toString(), text + ' done');
});

test('a fragmented message is reassembled; pipelined messages keep their order', async (t) => {
  const ws = await dial(t, big.url);
  ws.send('frag-', { fin: false });
  ws.send('ment', { fin: true });
  assert.equal((await nextMessage(ws)).data.toString(), 'frag-ment done');
  const replies = [];
  ws.on('message', (data) => replies.push(data.toString()));
  for (let i = 0; i < 1000; i++) {
    ws.send(String(i));
  }
  const deadline = Date.now() + 5000;
  while (replies.length < 1000 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.deepEqual(replies, Array.from({ length: 1000 }, (_, i) => `${i} done`));
});

test('ping gets a pong with the same payload', async (t) => {
  const ws = await dial(t, big.url);
  for (const payload of [Buffer.from('are you there?'), Buffer.alloc(0), randomBytes(125)]) {
    ws.ping(payload);
    const [pong] = await once(ws, 'pong', { signal: AbortSignal.timeout(5000) });
    assert.ok(pong.equals(payload), `pong ${pong.toString('hex')} for ping ${payload.toString('hex')}`);
  }
});

test('the server pings an idle client, and ws answers: the connection stays up', async (t) => {
  const srv = await startWsgate(['-ping-interval', '100ms', '-pong-timeout', '200ms']);
  const ws = await dial(t, srv.url);
  let pings = 0;
  ws.on('ping', () => pings++);
  await new Promise((resolve) => setTimeout(resolve, 800));
  assert.ok(pings >= 3, `${pings} pings in 800 ms with -ping-interval 100ms`);
  assert.equal(ws.readyState, WebSocket.OPEN);
  ws.send('still here');
  assert.equal((await nextMessage(ws)).data.toString(), 'still here done');
});

test('client close codes 1000 and 4000 are echoed', async (t) => {
  for (const [code, reason] of [[1000, 'bye'], [4000, 'app says bye']]) {
    const ws = await dial(t, big.url);
    const closed = closeOf(ws);
    ws.close(code, reason);
    assert.equal((await closed).code, code);
  }
});

test('a message over the read limit closes with 1009', async (t) => {
  // Small enough to be sent whole before the server closes. With megabytes still in flight, the
  // server closes its socket with unread data, the kernel answers with a reset, and ws may see 1006
  // instead of 1009 (a server issue: it does not drain the peer's data after its close frame).
  for (const data of [Buffer.alloc(1025), 'x'.repeat(8192)]) {
    const ws = await dial(t, small.url);
    const closed = closeOf(ws);
    ws.send(data);
    assert.equal((await closed).code, 1009);
  }
});

test('invalid UTF-8 in a text message closes with 1007', async (t) => {
  const ws = await dial(t, big.url);
  const closed = closeOf(ws);
  ws.send(Buffer.from([0x48, 0x69, 0xff, 0xfe]), { binary: false });
  assert.equal((await closed).code, 1007);
});

test('a client that stops reading is cut off: the server does not hold its replies forever', async (t) => {
  // Whether the server first stops reading it (backpressure, then -write-timeout: 1006) or its send
  // queue overflows (1013 "slow consumer") is the server's choice; the server's log says which.
  const srv = await startWsgate(['-write-timeout', '300ms', '-close-timeout', '300ms', '-send-queue-messages', '4', '-send-queue-bytes', '131072', '-log-level', 'debug']);
  const ws = await dial(t, srv.url);
  ws.pause();
  const chunk = Buffer.alloc(60_000, 'x');
  for (let i = 0; i < 300; i++) { // 18 MB of answers: more than loopback's socket buffers hold
    ws.send(chunk);
  }
  const cutOff = /msg="connection closed" conn=1 .*(code=1013 reason="slow consumer"|code=1006 reason="write timeout")/;
  await waitUntil(() => cutOff.test(srv.logs()), 'the server to drop the client', 10_000);
});

test('the server shutting down closes with 1001', async (t) => {
  const srv = await startWsgate();
  const ws = await dial(t, srv.url);
  const closed = closeOf(ws);
  await srv.stop('SIGTERM');
  assert.deepEqual(await closed, { code: 1001, reason: 'server shutting down' });
});

test('permessage-deflate: negotiated with ws, large messages echo, the read limit applies after inflating', async (t) => {
  const srv = await startWsgate(['-compression', '-read-limit', '65536', '-send-queue-bytes', '131072']);
  const ws = await dial(t, srv.url, { perMessageDeflate: true });
  assert.match(ws.extensions, /permessage-deflate/);
  const text = 'wsgate '.repeat(9000); // 63 KB, compresses well
  ws.send(text);
  assert.equal((await nextMessage(ws)).data.toString(), text + ' done');
  const closed = closeOf(ws);
  ws.send('x'.repeat(100_000)); // a few hundred bytes on the wire, 100 KB inflated
  assert.equal((await closed).code, 1009);

  const plain = await dial(t, big.url, { perMessageDeflate: true });
  assert.equal(plain.extensions, '', 'a server without -compression declines the extension');
});

test('subprotocols: the server picks by its own preference', async (t) => {
  const srv = await startWsgate(['-subprotocols', 'chat,superchat']);
  const ws = await dial(t, srv.url, { protocols: ['superchat', 'chat'] });
  assert.equal(ws.protocol, 'chat');
  // No common subprotocol: wsgate accepts without one (RFC 6455 §4.2.2), and ws, like browsers,
  // then fails the connection on its side.
  const none = new WebSocket(srv.url, ['other']);
  t.after(() => none.terminate());
  const [err] = await once(none, 'error', { signal: AbortSignal.timeout(5000) });
  assert.match(err.message, /Server sent no subprotocol/);
  const plain = await dial(t, srv.url);
  assert.equal(plain.protocol, '');
});

test('origins: the same origin is allowed, another is refused with 403', async (t) => {
  const same = await dial(t, big.url, { origin: `http://127.0.0.1:${big.port}` });
  same.send('same origin');
  assert.equal((await nextMessage(same)).data.toString(), 'same origin done');
  const evil = new WebSocket(big.url, { origin: 'http://evil.example' });
  t.after(() => evil.terminate());
  evil.on('error', () => {}); // the refusal also surfaces as an error
  const [, res] = await once(evil, 'unexpected-response', { signal: AbortSignal.timeout(5000) });
  assert.equal(res.statusCode, 403);
  res.resume();
});
