// The pub/sub clients of the Node tests: quick reconnects, Node's ws, and closed at the end of the
// file along with every wsgate and proxy it started; register with after(closeAll).

import WebSocket from 'ws';
import { PubSubClient } from '../../cmd/wsgate/web/js/wsgate-pubsub.js';
import { stopAll } from './server.js';
import { closeProxies } from './proxy.js';

/** @type {Set<PubSubClient>} */
const clients = new Set();

/**
 * A client with quick reconnects, closed by closeAll.
 * @param {string | string[]} url one endpoint, or several
 * @param {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').PubSubClientOptions} [options]
 */
export function newClient(url, options = {}) {
  const client = new PubSubClient(url, { WebSocket, minDelay: 50, maxDelay: 200, ...options });
  clients.add(client);
  return client;
}

/**
 * Subscribes client to channel and records what it is given.
 * @param {PubSubClient} client
 * @param {string} channel
 * @param {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').SubscribeOptions} [options]
 */
export function recorder(client, channel, options = {}) {
  /** @type {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').Publication[]} */
  const pubs = [];
  /** @type {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').SubscribedInfo[]} */
  const subscribed = [];
  /** @type {string[]} */
  const presence = [];
  /** @type {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').PubSubError[]} */
  const errors = [];
  /** @type {import('../../cmd/wsgate/web/js/wsgate-pubsub.js').GapInfo[]} */
  const gaps = [];
  const sub = client.subscribe(channel, {
    onPublication: (p) => pubs.push(p),
    onSubscribed: (info) => subscribed.push(info),
    onJoin: (c) => presence.push('join ' + c.conn),
    onLeave: (c) => presence.push('leave ' + c.conn),
    onError: (err) => errors.push(err),
    onGap: (g) => gaps.push(g),
    ...options,
  });
  return { sub, pubs, subscribed, presence, errors, gaps, data: () => pubs.map((p) => p.data) };
}

/** Closes every client made by newClient, then the proxies and the wsgate processes. */
export async function closeAll() {
  clients.forEach((c) => c.close());
  clients.clear();
  await closeProxies();
  await stopAll();
}
