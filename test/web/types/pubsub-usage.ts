// Compiled (never run) by types.test.js: the hand-written wsgate-pubsub.d.ts must accept what
// docs/CLIENTS.md shows and reject what the client refuses.
import {
  PubSubClient, PubSubError, RequestError, ErrorCode, SUBPROTOCOL, refreshDelay,
  type Position, type Publication, type SubscribedInfo, type Subscription, type GapInfo,
} from '../../../cmd/wsgate/web/js/wsgate-pubsub.js';
import { OutboxFullError, CloseCode, type WsgateCloseEvent } from '../../../cmd/wsgate/web/js/wsgate.js';

const ps = new PubSubClient('/ws', { pingTimeout: 50_000, requestTimeout: 5_000, maxDelay: 10_000 });
ps.on('state', (ev) => console.log(ev.state, ps.protocol === SUBPROTOCOL));
ps.on('close', (ev: WsgateCloseEvent) => console.log(ev.willReconnect));
const sub: Subscription = ps.subscribe('chat', {
  presence: true,
  onPublication: (pub: Publication) => console.log(pub.channel, pub.epoch, pub.offset, pub.data, pub.recovered),
  onJoin: (client, channel) => console.log(client.conn, client.user ?? '', channel),
  onLeave: (client) => console.log(client.conn),
  onSubscribed: (info: SubscribedInfo) => {
    if (info.since && !info.recovered) console.log('resync', info.epoch, info.offset, info.resubscribed);
    console.log(info.publications);
  },
  onGap: (gap: GapInfo) => console.log(gap.channel, gap.since.offset, gap.epoch, gap.offset),
  onError: (err) => console.log(err.code, err.temporary, err.op, err.channel, err.code === ErrorCode.RATE_LIMITED),
});
ps.connect();

async function run(): Promise<void> {
  const info = await sub.ready;
  const pos: Position | null = sub.position;
  console.log(info.channel, pos?.offset, sub.state, sub.channel);
  const { epoch, offset } = await ps.publish('chat', { text: 'hi' });
  const h = await ps.history('chat', { since: { epoch, offset: offset - 1 }, limit: 10 });
  console.log(h.complete, h.more, h.publications.map((p) => p.offset));
  const page = await ps.history('chat', { limit: 10, all: false });
  console.log(page.more);
  const { clients, total, next } = await ps.presence('chat');
  console.log(clients.length, total, next ?? 'whole', await ps.ping());
  const more = await ps.presence('chat', { all: false, limit: 10, after: next });
  console.log(more.clients.map((c) => c.conn));
  try {
    await ps.publish('bad channel', 1);
  } catch (err) {
    if (err instanceof PubSubError && err.code === ErrorCode.BAD_CHANNEL) console.log(err.message);
    if (err instanceof RequestError) console.log(err.reason, err.sent);
    if (err instanceof OutboxFullError) console.log(err.size);
  }
  await sub.unsubscribe();
  ps.drop('test');
  ps.close();
}
void run();

// @ts-expect-error: the protocol is always wsgate.v1
new PubSubClient('/ws', { protocols: ['other'] });
// @ts-expect-error: subscribe options are checked
ps.subscribe('chat', { onPublish: () => {} });
// @ts-expect-error: a channel is a string
ps.publish(1, 'x');
// @ts-expect-error: after is a connection name, as a page's next gives it
void ps.presence('chat', { after: 17 });

// The gateway: tokens, connect, refresh, rpc, the server's own subscriptions.
const authed = new PubSubClient('/ws', {
  token: 'first',
  getToken: async () => (await fetch('/token')).text(),
  getChannelToken: async (channel) => channel.startsWith('private:') ? 'ch-token' : null,
});
authed.on('connected', (ev) => console.log(ev.client, ev.user, ev.expiresIn, ev.subscribed.join()));
authed.on('unauthorized', (ev) => console.log(ev.code, ev.reason));
authed.on('refreshed', (ev) => console.log(ev.expiresIn));
authed.on('subscribed', (ev) => console.log(ev.channel, ev.info?.server, ev.subscription?.state));
authed.on('unsubscribed', (ev) => console.log(ev.channel));
authed.on('publication', (ev) => console.log(ev.publication.channel, ev.publication.data));
authed.on('gap', (ev) => console.log(ev.gap.since.offset));
authed.on('close', (ev) => console.log(ev.code === CloseCode.UNAUTHORIZED, ev.code === CloseCode.TOKEN_EXPIRED));
authed.subscribe('private:x', { token: 't', getToken: () => 'again', onUnsubscribed: (ch) => console.log(ch) });
void authed.rpc('users.get', { id: 1 }).then((r: unknown) => console.log(r));
console.log(authed.subscription('#alice')?.channel, ErrorCode.TOKEN_EXPIRED === 110, refreshDelay(3600));
void authed.presence('chat').then((p) => p.clients.map((c) => c.info));
// @ts-expect-error: a token is a string
new PubSubClient('/ws', { token: 1 });
