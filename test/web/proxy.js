// A TCP proxy on a loopback port in front of a wsgate, for tests that need a real network failure
// between one client and the server while the others stay connected: cut() resets every
// connection and refuses new ones (the client sees 1006, its reconnect attempts fail), restore()
// lets connections through again, freeze() silences the current connections without closing them
// (a dead link: only a heartbeat notices it, or a slow one: thaw() lets them flow again).

import { createServer, connect } from 'node:net';

export class Proxy {
  /** @type {import('node:net').Server} */ #server;
  /** @type {Set<{client: import('node:net').Socket, upstream: import('node:net').Socket}>} */ #pairs = new Set();
  #down = false;

  /**
   * @param {import('node:net').Server} server
   * @param {number} port where it listens
   * @param {number} target the port it forwards to
   */
  constructor(server, port, target) {
    this.#server = server;
    this.port = port;
    this.target = target;
    this.pageURL = `http://127.0.0.1:${port}/`;
    this.url = `ws://127.0.0.1:${port}/ws`;
  }

  /** The connections passing through now. */
  get connections() {
    return this.#pairs.size;
  }

  /** Resets every connection and refuses new ones until restore(). */
  cut() {
    this.#down = true;
    for (const { client, upstream } of this.#pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.#pairs.clear();
  }

  /** Lets new connections through again. */
  restore() {
    this.#down = false;
  }

  /** Stops forwarding on the current connections, in both directions, without closing them. */
  freeze() {
    for (const { client, upstream } of this.#pairs) {
      client.unpipe(upstream);
      upstream.unpipe(client);
      client.pause();
      upstream.pause();
    }
  }

  /** Forwards again on the connections freeze() stopped, what they buffered meanwhile first. */
  thaw() {
    for (const { client, upstream } of this.#pairs) {
      client.pipe(upstream);
      upstream.pipe(client);
    }
  }

  /** @param {import('node:net').Socket} client */
  accept(client) {
    if (this.#down) {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(this.target, '127.0.0.1');
    const pair = { client, upstream };
    this.#pairs.add(pair);
    const end = () => {
      this.#pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Closes the listener and every connection. */
  async close() {
    this.cut();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

/** @type {Set<Proxy>} */
const proxies = new Set();

/**
 * Starts a proxy on a free loopback port forwarding to 127.0.0.1:targetPort.
 * @param {number} targetPort
 * @returns {Promise<Proxy>}
 */
export async function startProxy(targetPort) {
  /** @type {Proxy | undefined} */
  let proxy;
  const server = createServer((sock) => proxy?.accept(sock));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(undefined)));
  const addr = server.address();
  proxy = new Proxy(server, typeof addr === 'object' && addr ? addr.port : 0, targetPort);
  proxies.add(proxy);
  return proxy;
}

/** Closes every proxy; register with after() next to stopAll. */
export async function closeProxies() {
  await Promise.all([...proxies].map((p) => p.close()));
  proxies.clear();
}
