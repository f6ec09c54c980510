// Compiled (never run) by types.test.js: the hand-written wsgate.d.ts must accept what
// docs/CLIENTS.md shows and reject what the client refuses.
import {
  WsgateClient, connect, backoffDelay, shouldReconnect, CloseCode, OutboxFullError, ClosedError,
  type State, type WsgateCloseEvent,
} from '../../../cmd/wsgate/web/js/wsgate.js';

const client = new WsgateClient('/ws', { minDelay: 250, maxDelay: 10_000, outboxMessages: 10 });
client.on('message', (ev) => {
  const text: string = ev.binary ? new TextDecoder().decode(ev.data as ArrayBuffer) : (ev.data as string);
  console.log(text);
});
const off = client.on('close', (ev: WsgateCloseEvent) => console.log(ev.code, ev.reason, ev.wasClean, ev.willReconnect, ev.unsent.length));
off();
client.addEventListener('reconnecting', (ev) => console.log(ev.attempt, ev.delay));
client.addEventListener('state', (ev) => {
  const s: State = ev.state;
  console.log(s, ev.previous);
});
client.addEventListener('open', (ev) => console.log(ev.reconnected, ev.flushed));
client.addEventListener('error', (ev) => console.log(ev.message, ev.error));
client.connect();
try {
  const how: 'sent' | 'queued' = client.send('Hello!');
  client.send(new Uint8Array([1, 2, 3]));
  client.send(new ArrayBuffer(8));
  console.log(how, client.state, client.outbox.messages, client.outbox.bytes, client.url);
} catch (err) {
  if (err instanceof OutboxFullError) console.log(err.size);
  if (err instanceof ClosedError) console.log(err.message);
}
client.close(CloseCode.NORMAL, 'bye');
connect(new URL('ws://localhost:8080/ws')).close(4000);
console.log(backoffDelay(3, { minDelay: 1, maxDelay: 2, factor: 2 }, Math.random), shouldReconnect(1001));

// @ts-expect-error: numbers are not messages
client.send(42);
// @ts-expect-error: unknown option
new WsgateClient('/ws', { minDelai: 1 });
