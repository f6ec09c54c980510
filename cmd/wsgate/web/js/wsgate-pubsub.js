// wsgate pub/sub client: channels over the wsgate.v1 protocol (docs/PROTOCOL.md), on top of the
// reconnecting WsgateClient of ./wsgate.js.
//
// A dependency-free ES module, served by wsgate at /js/wsgate-pubsub.js (types:
// /js/wsgate-pubsub.d.ts):
//
//   import { PubSubClient } from '/js/wsgate-pubsub.js';
//   const ps = new PubSubClient('/ws');
//   ps.subscribe('chat', {
//     onPublication: (pub) => console.log(pub.offset, pub.data),
//     onSubscribed: (ev) => { if (ev.since && !ev.recovered) reloadFromServer(); },
//   });
//   ps.connect();
//   const { offset } = await ps.publish('chat', { text: 'hi' });
//
// What it adds to the transport: request ids, and a promise per request settled by its reply; the
// (epoch, offset) of every subscription, so that after a reconnect it subscribes again from there
// and hands the missed publications to onPublication, in order and before the live ones, or says
// plainly that they are lost (recovered: false); the same, while connected, for publications the
// server dropped for this connection (a jump in offsets, or a gap push): fetched from history in
// their place, or reported by onGap; the server's pages of history and presence, followed; a
// dead-link check on the server's {"push":"ping"}, which browsers need because they cannot see
// WebSocket pings.
//
// Requests made while no connection is open wait, in call order and within the outbox limits, for
// at most requestTimeout; a request that never reached a socket is rejected with sent: false and
// was not applied. Subscriptions are not requests: they last until unsubscribe() and are sent again
// on every connection, close() and connect() included.

import { WsgateClient, CloseCode, OutboxFullError, WsgateErrorEvent, backoffDelay, defaults } from './wsgate.js';
import { TokenSource, refreshDelay } from './wsgate-token.js';

export { refreshDelay };

/** The subprotocol name. */
export const SUBPROTOCOL = 'wsgate.v1';

/**
 * The protocol's error codes. 1xx: the request is wrong and fails again unchanged; 2xx: refused
 * now, may succeed later (PubSubError.temporary): the server failed (200), the broker did not
 * answer (201) or is at capacity (202), or this connection made more requests than its rate (203).
 * @readonly
 */
export const ErrorCode = Object.freeze({
  BAD_REQUEST: 100,
  UNKNOWN_OP: 101,
  BAD_CHANNEL: 102,
  TOO_LARGE: 103,
  FORBIDDEN: 104,
  NOT_SUBSCRIBED: 105,
  ALREADY_SUBSCRIBED: 106,
  LIMIT_EXCEEDED: 107,
  NOT_TEXT: 108,
  UNAUTHORIZED: 109,
  TOKEN_EXPIRED: 110,
  ALREADY_CONNECTED: 111,
  NOT_AVAILABLE: 112,
  INTERNAL: 200,
  UNAVAILABLE: 201,
  FULL: 202,
  RATE_LIMITED: 203,
  CONNECTION_LIMIT: 204,
});

/**
 * Option defaults of the pub/sub layer, in milliseconds.
 * @readonly
 */
export const pubsubDefaults = Object.freeze({
  pingTimeout: 50000, // twice the server's {"push":"ping"} period of 25 s
  requestTimeout: 10000,
});

/** The server answered a request with an error. */
export class PubSubError extends Error {
  /**
   * @param {number} code the protocol's error code (see ErrorCode)
   * @param {string} message the server's message
   * @param {string} [op] the request's op, when the reply matched a request
   * @param {string} [channel]
   */
  constructor(code, message, op, channel) {
    super(message);
    this.name = 'PubSubError';
    /** The protocol's numeric error code. */
    this.code = code;
    this.op = op;
    this.channel = channel;
  }

  /** Whether the server may accept the same request later (a 2xx code). */
  get temporary() {
    return this.code >= 200 && this.code < 300;
  }
}

/**
 * A request got no reply. reason: 'closed' (the client is closed or closing, or gave up),
 * 'disconnected' (the connection was lost after the request was sent), 'timeout' (no reply within
 * requestTimeout), 'unsubscribed' (a subscription ended before the server confirmed it).
 */
export class RequestError extends Error {
  /**
   * @param {string} message
   * @param {'closed' | 'disconnected' | 'timeout' | 'unsubscribed'} reason
   * @param {boolean} sent
   */
  constructor(message, reason, sent) {
    super(message);
    this.name = 'RequestError';
    this.reason = reason;
    /** Whether the request reached a socket: if so the server may have applied it. */
    this.sent = sent;
  }
}

/** The client stopped because the server does not accept its identity. */
export class WsgateUnauthorizedEvent extends Event {
  /**
   * @param {number} code the close code 4001, or the connect's error code: 109 (unauthorized) or 110 (expired, twice)
   * @param {string} reason the server's close reason or error message
   */
  constructor(code, reason) {
    super('unauthorized');
    this.code = code;
    this.reason = reason;
  }
}

/** The server accepted a connect: the connection is ready. */
export class WsgateConnectedEvent extends Event {
  /**
   * @param {string} client the connection's name on the server
   * @param {string} user the user the token names, '' for anonymous
   * @param {number} expiresIn seconds the token lasts, 0 for ever
   * @param {string[]} subscribed the channels the server subscribed this connection to
   */
  constructor(client, user, expiresIn, subscribed) {
    super('connected');
    this.client = client;
    this.user = user;
    this.expiresIn = expiresIn;
    this.subscribed = subscribed;
  }
}

/** A refresh went through: the connection's identity lasts expiresIn more seconds. */
export class WsgateRefreshedEvent extends Event {
  /** @param {number} expiresIn */
  constructor(expiresIn) {
    super('refreshed');
    this.expiresIn = expiresIn;
  }
}

/** subscribed: the server subscribed this client to a channel; unsubscribed: it ended one it made. */
export class WsgateSubscriptionEvent extends Event {
  /**
   * @param {'subscribed' | 'unsubscribed'} type
   * @param {string} channel
   * @param {SubscribedInfo | null} info with subscribed
   * @param {Subscription | null} subscription with subscribed
   */
  constructor(type, channel, info, subscription) {
    super(type);
    this.channel = channel;
    this.info = info;
    this.subscription = subscription;
  }
}

/** A publication of a subscription the server made. */
export class WsgatePublicationEvent extends Event {
  /** @param {Publication} publication */
  constructor(publication) {
    super('publication');
    this.publication = publication;
  }
}

/** Publications lost on a subscription the server made (see onGap). */
export class WsgateGapEvent extends Event {
  /** @param {GapInfo} gap */
  constructor(gap) {
    super('gap');
    this.gap = gap;
  }
}

/**
 * history: the protocol's default of publications per history request; historyPage and
 * presencePage: the most a history or presence request may ask for; presenceAll: what presence()
 * gathers by default across pages; retries: how many empty pages in a row (the connection's send
 * queue is full) history() and presence() wait out; held: the most live pushes a catch-up holds
 * before it drops them to fetch them from history too.
 */
const limits = Object.freeze({ history: 100, historyPage: 1000, presencePage: 1000, presenceAll: 10000, retries: 5, held: 1000 });

/** @typedef {{epoch: string, offset: number}} Position */
/** @typedef {{conn: string, user?: string, info?: unknown}} ClientInfo */
/** @typedef {{offset: number, data: unknown}} StoredPublication */

/**
 * A page of history: the stream's top (epoch, offset), and publications oldest first.
 * @typedef {object} HistoryResult
 * @property {string} epoch
 * @property {number} offset
 * @property {boolean} complete false when publications after since are gone, or the epoch changed
 * @property {boolean} more publications after the last one returned exist: ask from it
 * @property {StoredPublication[]} publications
 */

/**
 * @typedef {object} HistoryOptions
 * @property {Position} [since] the publications after this position; none: the latest
 * @property {number} [limit] most publications, 1–1000 (0 or none: 100)
 * @property {boolean} [all] follow the server's pages up to limit (true), or return one page
 */

/**
 * @typedef {object} PresenceResult
 * @property {number} total the channel's subscribers on the node
 * @property {ClientInfo[]} clients ordered by connection
 * @property {string} [next] more follow: ask again with after: next
 */

/**
 * @typedef {object} PresenceOptions
 * @property {boolean} [all] follow the server's pages (true), or return one page
 * @property {number} [limit] most clients: in all (10000 by default), or in the page (1–1000; 0 or none: 100)
 * @property {string} [after] start after this connection (a page's next)
 */

/**
 * A publication delivered to a subscription.
 * @typedef {object} Publication
 * @property {string} channel
 * @property {string} epoch
 * @property {number} offset
 * @property {unknown} data
 * @property {boolean} recovered whether it came from the server's history rather than live: missed
 *   while disconnected, or dropped by the server for this connection (a gap)
 */

/**
 * A subscribe the server accepted, the first one or one after a reconnect.
 * @typedef {object} SubscribedInfo
 * @property {string} channel
 * @property {string} epoch
 * @property {number} offset the channel's position when subscribed (recovered publications included)
 * @property {Position | null} since the position asked to recover from, null for a fresh subscribe
 * @property {boolean} recovered with since: every publication after it follows; false: some are lost
 * @property {boolean} resubscribed whether this follows a reconnect (or close() and connect())
 * @property {number} publications how many recovered publications follow this call (fetched in pages if need be)
 * @property {boolean} server the server subscribed it (at connect, from the token's channels, or with a
 *   subscribe push), not this client's subscribe request
 */

/**
 * Publications lost while subscribed: after since, up to and including (epoch, offset). Delivery
 * goes on after (epoch, offset). A later epoch than since's means the rest of since's epoch is lost.
 * @typedef {object} GapInfo
 * @property {string} channel
 * @property {Position} since the last publication delivered before the loss
 * @property {string} epoch
 * @property {number} offset
 */

/**
 * @typedef {object} SubscribeOptions
 * @property {(pub: Publication) => void} [onPublication] every publication, in offset order, once
 * @property {(client: ClientInfo, channel: string) => void} [onJoin] a connection subscribed, this one's own included (needs presence)
 * @property {(client: ClientInfo, channel: string) => void} [onLeave] a connection left (needs presence)
 * @property {(info: SubscribedInfo) => void} [onSubscribed] each accepted subscribe, before the recovered publications
 * @property {(info: GapInfo) => void} [onGap] publications missed while subscribed that history no longer has, or refuses
 * @property {(err: PubSubError) => void} [onError] the server refused a subscribe (2xx: it is retried), or for good the history request of a catch-up
 * @property {(channel: string) => void} [onUnsubscribed] the server ended the subscription (an unsubscribe push)
 * @property {boolean} [presence] receive the presence pushes: onJoin and onLeave
 * @property {Position} [since] recover from this position on the first subscribe (one saved earlier)
 * @property {string} [token] a channel token, for a channel whose namespace asks for one
 * @property {(channel: string) => Promise<string | null> | string | null} [getToken] gives the channel token
 *   when there is none, and again once when the server answers 110 (expired)
 */

/**
 * @typedef {object} PubSubClientOptions
 * @property {number} [pingTimeout] ms without any frame before the link is taken as dead and dropped (50000; 0: never)
 * @property {number} [requestTimeout] ms a request may wait for its reply, or for a connection (10000)
 * @property {string | null} [token] the token of the first connect; with it (or getToken) every connection
 *   sends connect first
 * @property {() => Promise<string | null> | string | null} [getToken] a fresh token: for a connection that
 *   needs one (none yet, expired, closed with 4501, refused with 110) and for every refresh; null or ''
 *   connects without a token
 * @property {(channel: string) => Promise<string | null> | string | null} [getChannelToken] the channel token
 *   of a subscription that has neither token nor getToken
 */

/** @typedef {Omit<import('./wsgate.js').WsgateClientOptions, 'protocols'> & PubSubClientOptions} Options */

/**
 * @typedef {object} Pending a request awaiting its reply
 * @property {string} op
 * @property {string | undefined} channel
 * @property {string} frame
 * @property {boolean} sent handed to the transport: on the wire, or in its outbox for the next connection
 * @property {boolean} onWire handed to an open socket: lost with it
 * @property {ReturnType<typeof setTimeout> | undefined} timer
 * @property {(err: Error | null, result?: any) => void} done
 */

/**
 * @typedef {object} CatchUp publications of one epoch a subscription fetches from history, after the
 * last one it delivered, up to target
 * @property {string} epoch
 * @property {number} target
 */

/**
 * @typedef {object} SubRecord a subscription's state, shared with its Subscription object
 * @property {string} channel
 * @property {SubscribeOptions} opts
 * @property {'subscribing' | 'subscribed' | 'failed' | 'unsubscribed'} state
 * @property {Position | null} position
 * @property {number} inflight the id of the subscribe on the wire, 0 if none
 * @property {boolean} server the server made it and keeps it (this client never asked): it is not resubscribed
 * @property {string | null | undefined} token the channel token its subscribes send; null: none, undefined: not fetched yet
 * @property {boolean} fetching its channel token is being fetched: the subscribe follows
 * @property {boolean} retried its channel token was refused as expired once since the last subscribe went through
 * @property {Subscription | undefined} handle its Subscription, once made
 * @property {any[]} early pub and gap pushes that came before the subscribe reply
 * @property {CatchUp | null} catchup publications being fetched from history; live ones wait in held
 * @property {any[]} held pub and gap pushes that came during a catch-up, in order
 * @property {boolean} established the server accepted it once
 * @property {number} attempt retries after temporary errors
 * @property {ReturnType<typeof setTimeout> | undefined} retry
 * @property {Promise<SubscribedInfo>} ready
 * @property {(info: SubscribedInfo) => void} resolve
 * @property {(err: Error) => void} reject
 * @property {boolean} settled
 */

/** A subscription to one channel; PubSubClient.subscribe makes them. */
export class Subscription {
  /** @type {SubRecord} */ #rec;
  /** @type {() => Promise<void>} */ #unsubscribe;

  /**
   * @param {SubRecord} rec
   * @param {() => Promise<void>} unsubscribe
   */
  constructor(rec, unsubscribe) {
    this.#rec = rec;
    this.#unsubscribe = unsubscribe;
  }

  /** The channel. */
  get channel() {
    return this.#rec.channel;
  }

  /**
   * subscribing (sent or waiting for a connection), subscribed, failed (refused with a 1xx code),
   * unsubscribed.
   */
  get state() {
    return this.#rec.state;
  }

  /** @returns {Position | null} the position of the last publication delivered, or of the subscribe */
  get position() {
    return this.#rec.position && { ...this.#rec.position };
  }

  /**
   * Resolves with the first accepted subscribe, once the publications it recovers are delivered;
   * rejects with PubSubError when the server refuses it for good, or RequestError when the client
   * closes or unsubscribe() comes first.
   * @returns {Promise<SubscribedInfo>}
   */
  get ready() {
    return this.#rec.ready;
  }

  /**
   * Stops the deliveries at once and tells the server if it knows the subscription.
   * @returns {Promise<void>}
   */
  unsubscribe() {
    return this.#unsubscribe();
  }
}

/**
 * A WsgateClient that speaks wsgate.v1: subscribe, publish, presence, history, with recovery of
 * the publications missed while disconnected. Connection events (open, close, reconnecting, state)
 * are the transport's; protocol frames also appear as message events. The error event also
 * reports a server error that answers no request, and a frame that is not wsgate.v1 JSON.
 */
export class PubSubClient extends WsgateClient {
  /** @type {TokenSource} */ #auth;
  /** @type {PubSubClientOptions['getChannelToken']} */ #getChannelToken;
  #ready = false; // the connection is open, and connected when there is a token: requests go out
  #gen = 0; // counts connections: what settles after its connection ended is ignored
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #refreshTimer;
  #refreshing = false;
  #denied = false; // this client closed with 4001 after a refused connect, and said so already
  /** @type {Required<Pick<PubSubClientOptions, 'pingTimeout' | 'requestTimeout'>> & {outboxMessages: number, outboxBytes: number, minDelay: number, maxDelay: number, factor: number, random: () => number}} */ #opts;
  #nextId = 1;
  /** @type {Map<number, Pending>} by request id */ #pending = new Map();
  /** @type {number[]} ids of requests waiting for a connection, in call order */ #waiting = [];
  #waitingBytes = 0;
  /** @type {Map<string, SubRecord>} by channel */ #subs = new Map();
  #lastSeen = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #pingTimer;
  /** @type {Set<() => void>} ends of the waits of #wait, called when the connection is lost */ #waits = new Set();
  #encoder = new TextEncoder();

  /**
   * @param {string | URL | Array<string | URL>} url one endpoint, or several (see WsgateClient)
   * @param {Options} [options] the WsgateClient options (protocols is always wsgate.v1), and pingTimeout, requestTimeout
   */
  constructor(url, options = {}) {
    const { pingTimeout, requestTimeout, token, getToken, getChannelToken, ...transport } = { ...pubsubDefaults, ...options };
    const auth = new TokenSource(token, getToken);
    const before = transport.beforeConnect;
    super(url, {
      ...transport,
      protocols: [SUBPROTOCOL],
      beforeConnect: async () => {
        await before?.();
        await auth.prepare(); // a token fetched before the socket opens: connect goes out at once
      },
    });
    this.#auth = auth;
    this.#getChannelToken = getChannelToken;
    if (!(pingTimeout >= 0 && requestTimeout > 0)) {
      throw new RangeError('wsgate: want pingTimeout >= 0 and requestTimeout > 0');
    }
    this.#opts = { ...defaults, random: Math.random, ...transport, pingTimeout, requestTimeout };
    // Registered before any listener of the application: the subscriptions go out before what an
    // open listener sends, and the bookkeeping is done before a close listener runs.
    this.addEventListener('open', (ev) => this.#opened(ev));
    this.addEventListener('message', (ev) => this.#received(ev.data, ev.binary));
    this.addEventListener('close', (ev) => this.#lost(ev));
  }

  /**
   * Subscribes to channel: now if the connection is open, else as soon as one opens.
   * @param {string} channel 1–255 bytes of A–Z a–z 0–9 _ - : . @ /
   * @param {SubscribeOptions} [options]
   * @returns {Subscription}
   * @throws {PubSubError} code 106 if this client already has a subscription to channel
   */
  subscribe(channel, options = {}) {
    if (typeof channel !== 'string') {
      throw new TypeError('wsgate: the channel must be a string');
    }
    if (this.#subs.has(channel)) {
      throw new PubSubError(ErrorCode.ALREADY_SUBSCRIBED, `already subscribed to ${JSON.stringify(channel)}`, 'subscribe', channel);
    }
    const rec = this.#record(channel, options, false);
    if (this.#ready) {
      this.#sendSubscribe(rec);
    }
    return this.#handle(rec);
  }

  /**
   * Replaces the token: the next connect sends it (getToken is asked again only when the server
   * says it expired). The open connection keeps its identity: to be someone else now, close()
   * and connect() again.
   * @param {string | null} token
   */
  setToken(token) {
    this.#auth.set(token);
  }

  /**
   * The subscription to channel: one this client made, or one the server made (at connect, from
   * the token's channels, or later with a subscribe push); null if none.
   * @param {string} channel
   * @returns {Subscription | null}
   */
  subscription(channel) {
    const rec = this.#subs.get(channel);
    return rec ? this.#handle(rec) : null;
  }

  /**
   * Calls method of the application's backend (the server's RPC hook) with data (any JSON value,
   * or undefined for none); resolves with its result.
   * @param {string} method 1–64 bytes of letters, digits and _ - : . /
   * @param {unknown} [data]
   * @returns {Promise<unknown>}
   */
  rpc(method, data) {
    if (typeof method !== 'string' || method === '') {
      return Promise.reject(new TypeError('wsgate: rpc needs a method name'));
    }
    return this.#request('rpc', undefined, { method, data });
  }

  /**
   * A new subscription record in #subs.
   * @param {string} channel
   * @param {SubscribeOptions} options
   * @param {boolean} server
   * @returns {SubRecord}
   */
  #record(channel, options, server) {
    /** @type {(info: SubscribedInfo) => void} */ let resolve = () => {};
    /** @type {(err: Error) => void} */ let reject = () => {};
    const ready = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    ready.catch(() => {}); // an application that does not await ready is told through onError
    /** @type {SubRecord} */
    const rec = {
      channel, opts: options, state: 'subscribing', position: options.since ? { ...options.since } : null,
      inflight: 0, early: [], catchup: null, held: [], established: false, attempt: 0, retry: undefined, ready, resolve, reject, settled: false,
      server, token: options.token || undefined, fetching: false, retried: false, handle: undefined,
    };
    this.#subs.set(channel, rec);
    return rec;
  }

  /**
   * @param {SubRecord} rec
   * @returns {Subscription}
   */
  #handle(rec) {
    rec.handle ??= new Subscription(rec, () => this.#unsubscribe(rec));
    return rec.handle;
  }

  /**
   * Publishes data (any JSON value) on channel.
   * @param {string} channel
   * @param {unknown} data
   * @returns {Promise<Position>} the publication's position
   */
  publish(channel, data) {
    if (data === undefined) {
      return Promise.reject(new TypeError('wsgate: publish needs data (any JSON value)'));
    }
    return this.#request('publish', channel, { data });
  }

  /**
   * Who is subscribed to channel on the server's node, ordered by connection. The server pages the
   * list; by default this follows the pages until the list is whole or holds limit clients.
   * @param {string} channel
   * @param {PresenceOptions} [options]
   * @returns {Promise<PresenceResult>}
   */
  async presence(channel, { all = true, limit, after } = {}) {
    if (!all) {
      return this.#request('presence', channel, { limit, after });
    }
    let left = limit || limits.presenceAll;
    /** @type {PresenceResult} */
    const out = { total: 0, clients: [] };
    for (let empty = 0; ;) {
      /** @type {PresenceResult} */
      const page = await this.#request('presence', channel, { limit: Math.min(left, limits.presencePage), after });
      out.total = page.total;
      out.clients.push(...page.clients);
      left -= page.clients.length;
      delete out.next;
      if (!page.next) {
        return out;
      }
      out.next = after = page.next;
      empty = page.clients.length > 0 ? 0 : empty + 1;
      if (left <= 0 || empty > limits.retries) {
        return out;
      }
      await this.#wait(empty);
    }
  }

  /**
   * Publications of channel, oldest first: the first limit after since, or without since the
   * latest limit (0 or none: 100; at most 1000). The server pages its replies; by default this
   * follows the pages until it has limit publications or there are no more.
   * @param {string} channel
   * @param {HistoryOptions} [options]
   * @returns {Promise<HistoryResult>}
   */
  async history(channel, { since, limit, all = true } = {}) {
    let left = limit || limits.history;
    /** @type {HistoryResult | undefined} */
    let out;
    for (let empty = 0; ;) {
      /** @type {HistoryResult} */
      const page = await this.#request('history', channel, { since, limit: all ? left : limit });
      page.more = Boolean(page.more);
      page.publications ??= [];
      if (!all) {
        return page;
      }
      if (!out) {
        out = page;
      } else if (page.epoch !== out.epoch || !page.complete) {
        return { ...out, complete: false, more: false }; // the stream changed under the pages
      } else {
        out.publications.push(...page.publications);
        out.offset = page.offset;
        out.more = page.more;
      }
      const n = page.publications.length;
      left -= n;
      empty = n > 0 ? 0 : empty + 1;
      if (!page.more || left <= 0 || empty > limits.retries) {
        return out;
      }
      if (n > 0) {
        since = { epoch: page.epoch, offset: page.publications[n - 1].offset };
      }
      await this.#wait(empty);
    }
  }

  /**
   * Waits before asking again after attempt failures in a row (0: not at all), with the
   * reconnect backoff: an empty page that says more means the connection's queue is full. The
   * loss of the connection ends the wait at once: what waited learns of it from its next request.
   * @param {number} attempt
   * @returns {Promise<void>}
   */
  #wait(attempt) {
    if (attempt === 0) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.#waits.delete(end);
        resolve();
      };
      const timer = setTimeout(end, backoffDelay(attempt, this.#opts, this.#opts.random));
      this.#waits.add(end);
    });
  }

  /**
   * A round trip to the server.
   * @returns {Promise<number>} milliseconds from the call to the reply
   */
  async ping() {
    const start = Date.now();
    await this.#request('ping', undefined, {});
    return Date.now() - start;
  }

  /**
   * Sends a request now if open, else queues it; the promise settles with its reply.
   * @param {string} op
   * @param {string | undefined} channel
   * @param {object} fields
   * @param {boolean} [now] send it on the open socket before the connection is ready (connect)
   * @returns {Promise<any>}
   */
  #request(op, channel, fields, now = false) {
    return new Promise((resolve, reject) => {
      if (this.state === 'closed' || this.state === 'closing') {
        reject(new RequestError(`wsgate: ${op}: the client is ${this.state}`, 'closed', false));
        return;
      }
      const id = this.#nextId++;
      /** @type {Pending} */
      const p = {
        op, channel, frame: JSON.stringify({ id, op, channel, ...fields }), sent: false, onWire: false, timer: undefined,
        done: (err, result) => (err ? reject(err) : resolve(result)),
      };
      const go = now || this.#ready;
      if (!go) {
        const size = this.#encoder.encode(p.frame).byteLength;
        const { outboxMessages, outboxBytes } = this.#opts;
        if (this.#waiting.length + 1 > outboxMessages || this.#waitingBytes + size > outboxBytes) {
          reject(new OutboxFullError(`wsgate: ${op}: ${this.#waiting.length} requests (${this.#waitingBytes} bytes) already wait for a connection`, size));
          return;
        }
        this.#waiting.push(id);
        this.#waitingBytes += size;
      }
      this.#pending.set(id, p);
      p.timer = setTimeout(() => this.#settle(id, new RequestError(
        `wsgate: ${op}: no ${p.sent ? 'reply' : 'connection'} within ${this.#opts.requestTimeout} ms`, 'timeout', p.sent)), this.#opts.requestTimeout);
      if (go) {
        this.#transmit(id, p);
      }
    });
  }

  /**
   * Hands a request to the transport.
   * @param {number} id
   * @param {Pending} p
   */
  #transmit(id, p) {
    try {
      p.onWire = this.send(p.frame) === 'sent'; // 'queued': the transport sends it on its next connection
    } catch (err) {
      // The socket is going (state open, socket closing) and the transport's outbox is full.
      this.#settle(id, /** @type {Error} */ (err));
      return;
    }
    p.sent = true;
    if (p.op === 'subscribe') {
      const rec = this.#subs.get(/** @type {string} */ (p.channel));
      if (rec) {
        rec.inflight = id;
      }
    }
  }

  /**
   * Settles request id, once: with its reply, or with why it got none.
   * @param {number} id
   * @param {Error | null} err
   * @param {any} [result]
   */
  #settle(id, err, result) {
    const p = this.#pending.get(id);
    if (!p) {
      return;
    }
    this.#pending.delete(id);
    clearTimeout(p.timer);
    if (!p.sent) {
      const i = this.#waiting.indexOf(id);
      if (i >= 0) {
        this.#waiting.splice(i, 1);
        this.#waitingBytes -= this.#encoder.encode(p.frame).byteLength;
      }
    }
    p.done(err, result);
  }

  /**
   * Sends a subscribe for rec, once its channel token is at hand: one fetched first when it has
   * none and a getToken (its own, or the client's getChannelToken).
   * @param {SubRecord} rec
   */
  #sendSubscribe(rec) {
    clearTimeout(rec.retry);
    rec.retry = undefined;
    rec.state = 'subscribing';
    resetDelivery(rec);
    const getToken = rec.opts.getToken ?? this.#getChannelToken;
    if (rec.token === undefined && getToken) {
      if (!rec.fetching) {
        rec.fetching = true;
        void this.#fetchChannelToken(rec, getToken);
      }
      return; // the subscribe goes when the token comes
    }
    const id = this.#nextId++;
    /** @type {Pending} */
    const p = {
      op: 'subscribe', channel: rec.channel, sent: false, onWire: false, timer: undefined,
      frame: JSON.stringify({
        id, op: 'subscribe', channel: rec.channel, presence: rec.opts.presence || undefined, since: rec.position ?? undefined, token: rec.token || undefined,
      }),
      done: (err, result) => this.#subscribed(rec, id, err, result),
    };
    // No timeout: a subscribe stays until its reply or the loss of its connection, then it is resent.
    this.#pending.set(id, p);
    this.#transmit(id, p);
  }

  /**
   * Fetches rec's channel token, then subscribes if the connection is ready (else #flush will). A
   * getToken that fails is reported as an error event and asked again after a backoff delay.
   * @param {SubRecord} rec
   * @param {(channel: string) => Promise<string | null> | string | null} getToken
   */
  async #fetchChannelToken(rec, getToken) {
    try {
      const t = await getToken(rec.channel);
      if (t !== undefined && t !== null && typeof t !== 'string') {
        throw new TypeError(`wsgate: the channel token of ${JSON.stringify(rec.channel)} is a ${typeof t}, want a string, or null for none`);
      }
      rec.token = t || null;
    } catch (err) {
      this.dispatchEvent(new WsgateErrorEvent(err));
    } finally {
      rec.fetching = false;
    }
    if (this.#subs.get(rec.channel) !== rec || rec.state !== 'subscribing' || rec.inflight) {
      return;
    }
    if (rec.token === undefined) {
      rec.retry = setTimeout(() => this.#ready && this.#sendSubscribe(rec), backoffDelay(++rec.attempt, this.#opts, this.#opts.random));
    } else if (this.#ready) {
      this.#sendSubscribe(rec);
    }
  }

  /**
   * The reply to a subscribe, or its loss; also a subscription the server made (id 0, server).
   * @param {SubRecord} rec
   * @param {number} id
   * @param {Error | null} err
   * @param {any} result
   * @param {boolean} [server] the server made it: at connect, or with a subscribe push
   */
  #subscribed(rec, id, err, result, server = false) {
    if (rec.inflight === id) {
      rec.inflight = 0;
    }
    if (this.#subs.get(rec.channel) !== rec) {
      return; // unsubscribed meanwhile
    }
    if (err instanceof PubSubError && err.code === ErrorCode.ALREADY_SUBSCRIBED && rec.state === 'subscribed') {
      return; // the server subscribed it meanwhile (a subscribe push): it is
    }
    if (err instanceof PubSubError && err.code === ErrorCode.TOKEN_EXPIRED && !rec.retried && (rec.opts.getToken ?? this.#getChannelToken)) {
      rec.retried = true; // once: a getToken that gives expired tokens would loop
      rec.token = undefined;
      this.#sendSubscribe(rec);
      return;
    }
    if (err instanceof PubSubError) {
      if (err.temporary && this.#ready) {
        rec.retry = setTimeout(() => this.#ready && this.#sendSubscribe(rec), backoffDelay(++rec.attempt, this.#opts, this.#opts.random));
      } else {
        this.#subs.delete(rec.channel);
        rec.state = 'failed';
        settleReady(rec, err);
      }
      call(rec.opts.onError, err);
      return;
    }
    if (err) {
      return; // the connection was lost: #lost decides
    }
    rec.attempt = 0;
    rec.retried = false;
    rec.state = 'subscribed';
    const since = rec.position;
    const epoch = String(result.epoch);
    const offset = Number(result.offset);
    const recovered = Boolean(result.recovered);
    // Delivery goes on after since if the server recovers from it (the zero position is before the
    // first publication), else after the channel's top.
    const from = recovered && since ? (since.epoch === epoch ? since.offset : 0) : offset;
    const early = rec.early;
    rec.early = [];
    rec.position = { epoch, offset: from };
    /** @type {SubscribedInfo} */
    const info = {
      channel: rec.channel, epoch, offset, since, recovered, resubscribed: rec.established, publications: offset - from, server,
    };
    rec.established = true;
    call(rec.opts.onSubscribed, info);
    if (rec.state !== 'subscribed') {
      return; // the callback unsubscribed
    }
    // The reply holds the first page of what is recovered (more: the rest is to be fetched); the
    // live pushes wait until all of it is delivered.
    const run = this.#catchUp(rec, epoch, offset);
    early.forEach((push) => this.#pushed(rec, push));
    this.#deliverStored(rec, recovered ? result.publications ?? [] : []);
    void this.#fetch(rec, run).then((done) => done && settleReady(rec, null, info));
  }

  /**
   * A pub or gap push for a subscription. Offsets of an epoch are contiguous: a pub push that
   * skips some, or a gap push beyond the last one delivered, means the server dropped some for
   * this connection (its slow-consumer policy); they are fetched from history, and the live
   * pushes held, until the subscription has caught up. A pub push of a new epoch starts its
   * sequence: one after offset 1 means the first ones of that epoch were missed, fetched alike.
   * @param {SubRecord} rec
   * @param {any} push
   */
  #pushed(rec, push) {
    if (rec.state === 'subscribing') {
      rec.early.push(push); // ahead of the subscribe reply: after it, in order
      return;
    }
    const pos = rec.position;
    if (rec.state !== 'subscribed' || !pos) {
      return;
    }
    const epoch = String(push.epoch);
    const offset = Number(push.offset);
    const gap = push.push === 'gap';
    const run = rec.catchup;
    if (run) {
      if (rec.held.length < limits.held || epoch !== run.epoch) {
        rec.held.push(push); // a gap push too: what it says may come live in what is held before it
      } else {
        // Not held without bound: what was held is fetched from history with the rest.
        rec.held = [];
        run.target = Math.max(run.target, offset);
      }
      return;
    }
    if (epoch === pos.epoch && (gap || offset !== pos.offset + 1)) {
      if (offset > pos.offset) { // else delivered already
        const next = this.#catchUp(rec, epoch, gap ? offset : offset - 1);
        if (!gap) {
          rec.held.push(push);
        }
        void this.#fetch(rec, next);
      }
      return;
    }
    const fresh = epoch !== pos.epoch && (!gap || pos.epoch === '');
    if (fresh && (gap || offset > 1)) {
      // A new epoch that does not start at 1 here (or a gap push in it, after a position that has
      // no epoch yet: a clustered server names none before the first publication): 1..offset-1
      // (1..offset for a gap) of it were missed, so they come from history first, from its start.
      rec.position = { epoch, offset: 0 };
      const next = this.#catchUp(rec, epoch, gap ? offset : offset - 1);
      if (!gap) {
        rec.held.push(push);
      }
      void this.#fetch(rec, next);
      return;
    }
    if (gap) {
      return; // about another epoch: its pushes say what matters
    }
    rec.position = { epoch, offset };
    call(rec.opts.onPublication, { channel: rec.channel, epoch, offset, data: push.data, recovered: false });
  }

  /**
   * Starts a catch-up of rec to target in epoch: from now the live pushes are held.
   * @param {SubRecord} rec
   * @param {string} epoch
   * @param {number} target
   * @returns {CatchUp}
   */
  #catchUp(rec, epoch, target) {
    const run = { epoch, target };
    rec.catchup = run;
    rec.held = [];
    return run;
  }

  /**
   * Fetches run's publications from history, a page at a time from the last one delivered, and
   * delivers them as recovered; then the held pushes. A temporary refusal, a timeout or a page
   * left empty (the connection's queue was full) is retried with backoff while the connection
   * lasts; what history no longer has, or refuses for good, is reported by onGap and skipped.
   * @param {SubRecord} rec
   * @param {CatchUp} run
   * @returns {Promise<boolean>} false when it was abandoned: connection lost, or unsubscribed
   */
  async #fetch(rec, run) {
    const current = () => rec.catchup === run;
    for (let attempt = 0; current();) {
      const since = /** @type {Position} */ (rec.position);
      if (since.epoch !== run.epoch || since.offset >= run.target) {
        break;
      }
      /** @type {HistoryResult} */
      let page;
      try {
        page = await this.#request('history', rec.channel, { since, limit: Math.min(run.target - since.offset, limits.historyPage) });
      } catch (err) {
        if (!current()) {
          return false;
        }
        if (err instanceof PubSubError && !err.temporary) {
          call(rec.opts.onError, err);
          this.#lose(rec, { epoch: run.epoch, offset: run.target });
          break;
        }
        await this.#wait(++attempt);
        continue;
      }
      if (!current()) {
        return false;
      }
      const pubs = page.publications ?? [];
      if (page.epoch !== run.epoch) {
        this.#lose(rec, { epoch: String(page.epoch), offset: Number(page.offset) });
        break;
      }
      if (!page.complete) {
        this.#lose(rec, { epoch: run.epoch, offset: pubs.length > 0 ? Number(pubs[0].offset) - 1 : Number(page.offset) });
      }
      this.#deliverStored(rec, pubs);
      if (pubs.length > 0) {
        attempt = 0;
      } else if (page.more) {
        await this.#wait(++attempt);
      } else {
        break; // nothing after since: the stream ends before the target
      }
    }
    if (!current()) {
      return false;
    }
    const held = rec.held;
    rec.catchup = null;
    rec.held = [];
    held.forEach((push) => this.#pushed(rec, push));
    return true;
  }

  /**
   * Delivers publications of the current epoch from history, oldest first, as recovered: those
   * after the last one delivered.
   * @param {SubRecord} rec
   * @param {StoredPublication[]} pubs
   */
  #deliverStored(rec, pubs) {
    for (const p of pubs) {
      const pos = /** @type {Position} */ (rec.position);
      if (rec.state !== 'subscribed') {
        return; // a callback unsubscribed, or dropped the connection
      }
      const offset = Number(p.offset);
      if (offset > pos.offset) {
        rec.position = { epoch: pos.epoch, offset };
        call(rec.opts.onPublication, { channel: rec.channel, epoch: pos.epoch, offset, data: p.data, recovered: true });
      }
    }
  }

  /**
   * The publications after the last one delivered, up to to, cannot be had: onGap says so, and
   * delivery goes on after to.
   * @param {SubRecord} rec
   * @param {Position} to
   */
  #lose(rec, to) {
    const since = /** @type {Position} */ (rec.position);
    if (to.epoch === since.epoch && to.offset <= since.offset) {
      return;
    }
    rec.position = { ...to };
    call(rec.opts.onGap, { channel: rec.channel, since: { ...since }, epoch: to.epoch, offset: to.offset });
  }

  /**
   * A presence push: the server gathers the joins and leaves of an interval into one; the
   * application hears of each connection, joins first (one connection is in one list at most).
   * @param {SubRecord} rec
   * @param {unknown} joined
   * @param {unknown} left
   */
  #presenceChanged(rec, joined, left) {
    for (const [list, fn] of /** @type {const} */ ([[joined, rec.opts.onJoin], [left, rec.opts.onLeave]])) {
      for (const client of Array.isArray(list) ? list : []) {
        if (rec.state !== 'subscribed') {
          return; // not yet (a push of the previous subscription), or a callback unsubscribed
        }
        call(fn, /** @type {ClientInfo} */ (client), rec.channel);
      }
    }
  }

  /**
   * @param {SubRecord} rec
   * @returns {Promise<void>}
   */
  async #unsubscribe(rec) {
    if (this.#subs.get(rec.channel) !== rec) {
      return;
    }
    this.#subs.delete(rec.channel);
    clearTimeout(rec.retry);
    const known = rec.state === 'subscribed' || rec.inflight !== 0;
    rec.state = 'unsubscribed';
    resetDelivery(rec);
    settleReady(rec, new RequestError(`wsgate: unsubscribed from ${JSON.stringify(rec.channel)} before the server confirmed it`, 'unsubscribed', rec.inflight !== 0));
    if (!known || !this.#ready) {
      return; // the server does not know it, or forgot it with the connection
    }
    try {
      await this.#request('unsubscribe', rec.channel, {});
    } catch (err) {
      const forgotten = err instanceof RequestError ? err.reason !== 'timeout' : err instanceof PubSubError && err.code === ErrorCode.NOT_SUBSCRIBED;
      if (!forgotten) {
        throw err;
      }
    }
  }

  /** @param {import('./wsgate.js').WsgateOpenEvent} ev */
  #opened(ev) {
    if (this.protocol !== SUBPROTOCOL) {
      ev.stopImmediatePropagation(); // the application hears of the close, not of a useless open
      const why = `the server did not negotiate ${SUBPROTOCOL}`;
      this.dispatchEvent(new WsgateErrorEvent(new Error(`wsgate: ${why}`)));
      this.close(CloseCode.NORMAL, why);
      return;
    }
    this.#lastSeen = Date.now();
    this.#watch();
    if (this.#auth.enabled) {
      this.#connect(this.#auth.current, false);
      return; // the rest waits for the connect reply
    }
    this.#ready = true;
    this.#restore([]); // without connect the server keeps no subscription for this client
    this.#flush();
  }

  /**
   * Sends connect with token first on the connection. Its reply makes the connection ready; 110
   * (expired) is answered with a fresh token from getToken, once; 109, or 110 again, stops the
   * client (unauthorized event, then close 4001); a 2xx refusal or no reply drops the connection,
   * to reconnect with backoff.
   * @param {string | null} token
   * @param {boolean} retried
   */
  #connect(token, retried) {
    const gen = this.#gen;
    this.#request('connect', undefined, token ? { token } : {}, true).then((result) => {
      if (gen === this.#gen) {
        this.#connected(result);
      }
    }, async (/** @type {unknown} */ err) => {
      if (gen !== this.#gen) {
        return;
      }
      if (err instanceof PubSubError && err.code === ErrorCode.TOKEN_EXPIRED && !retried && this.#auth.renewable) {
        this.#auth.expire();
        let fresh;
        try {
          fresh = await this.#auth.fresh();
        } catch (e) {
          if (gen === this.#gen) {
            this.dispatchEvent(new WsgateErrorEvent(e));
            this.drop('getToken failed');
          }
          return;
        }
        if (gen === this.#gen) {
          this.#connect(fresh, true);
        }
        return;
      }
      if (err instanceof PubSubError && (err.code === ErrorCode.UNAUTHORIZED || err.code === ErrorCode.TOKEN_EXPIRED)) {
        this.#auth.expire(); // a later connect() asks getToken first
        this.#denied = true;
        this.dispatchEvent(new WsgateUnauthorizedEvent(err.code, err.message));
        if (gen === this.#gen && this.state === 'open') {
          this.close(CloseCode.UNAUTHORIZED, truncateReason(err.message));
        }
        return;
      }
      if (err instanceof PubSubError && !err.temporary) {
        this.dispatchEvent(new WsgateErrorEvent(err)); // it would fail again: stop
        if (gen === this.#gen && this.state === 'open') {
          this.close(CloseCode.NORMAL, truncateReason(`connect: ${err.message}`));
        }
        return;
      }
      if (err instanceof PubSubError || (err instanceof RequestError && err.reason === 'timeout')) {
        this.drop(`connect: ${err.message}`); // later, with backoff
      }
    });
  }

  /**
   * The server accepted the connect: requests may go, refreshes are scheduled, and the server's
   * own subscriptions (the token's channels) are taken up.
   * @param {any} result
   */
  #connected(result) {
    const expiresIn = Number(result.expires_in) || 0;
    this.#auth.accepted(expiresIn);
    this.#scheduleRefresh(expiresIn);
    this.#ready = true;
    const subscribed = Array.isArray(result.subscribed) ? result.subscribed : [];
    this.#restore(subscribed);
    this.dispatchEvent(new WsgateConnectedEvent(String(result.client ?? ''), String(result.user ?? ''), expiresIn,
      subscribed.map((/** @type {any} */ s) => String(s.channel))));
    if (this.#ready) { // a listener may have closed it
      this.#flush();
    }
  }

  /**
   * Takes up the subscriptions the server made at connect (subscribed: their channels and tops).
   * A server-made subscription of the last connection that the server did not make again is over:
   * the client never subscribes one itself (it may not be allowed to), so it ends, with an
   * unsubscribed event. One this client made, that the server now made, is the server's on this
   * connection: it catches up from its position through history instead of subscribing.
   * @param {any[]} subscribed
   */
  #restore(subscribed) {
    const made = new Map(subscribed.map((s) => [String(s.channel), s]));
    for (const rec of [...this.#subs.values()]) {
      if (rec.server && !made.has(rec.channel)) {
        this.#ended(rec);
      }
    }
    for (const s of made.values()) {
      this.#serverSubscribed(s, true);
    }
  }

  /** The connection is ready: the subscriptions, then the requests that waited for it. */
  #flush() {
    for (const rec of this.#subs.values()) {
      if (rec.state === 'subscribing' && !rec.inflight && !rec.fetching) {
        this.#sendSubscribe(rec);
      }
    }
    const waiting = this.#waiting;
    this.#waiting = [];
    this.#waitingBytes = 0;
    for (const id of waiting) {
      const p = this.#pending.get(id);
      if (p) {
        this.#transmit(id, p);
      }
    }
  }

  /**
   * A subscription the server made: at connect (atConnect), or with a subscribe push on a live
   * connection. A channel seen for the first time gets a server-made record whose callbacks are
   * the client's events (subscribed, publication, gap); one already known (from the last
   * connection, or subscribed by this client) goes on from its position: the publications since
   * then are fetched from history, or reported lost when the epoch changed.
   * @param {any} s {channel, epoch, offset}
   * @param {boolean} atConnect
   */
  #serverSubscribed(s, atConnect) {
    const channel = String(s.channel);
    let rec = this.#subs.get(channel);
    if (rec && rec.state === 'subscribed' && !atConnect) {
      return; // already subscribed on this connection: the same stream
    }
    if (!rec) {
      rec = this.#record(channel, this.#serverOptions(), true);
    }
    clearTimeout(rec.retry);
    rec.retry = undefined;
    const epoch = String(s.epoch ?? '');
    const offset = Number(s.offset) || 0;
    const since = rec.position;
    const recovered = Boolean(since && since.epoch === epoch && since.offset <= offset);
    if (rec.state !== 'subscribing') {
      rec.state = 'subscribing';
      resetDelivery(rec);
    }
    this.#subscribed(rec, 0, null, { epoch, offset, recovered, publications: [] }, true);
  }

  /**
   * The server ended a subscription (an unsubscribe push), or did not make a server-made one
   * again on a new connection.
   * @param {SubRecord} rec
   */
  #ended(rec) {
    if (this.#subs.get(rec.channel) !== rec) {
      return;
    }
    this.#subs.delete(rec.channel);
    clearTimeout(rec.retry);
    rec.state = 'unsubscribed';
    resetDelivery(rec);
    settleReady(rec, new RequestError(`wsgate: the server ended the subscription to ${JSON.stringify(rec.channel)}`, 'unsubscribed', false));
    call(rec.opts.onUnsubscribed, rec.channel);
  }

  /**
   * The callbacks of a server-made subscription: events of the client.
   * @returns {SubscribeOptions}
   */
  #serverOptions() {
    return {
      onSubscribed: (info) => this.dispatchEvent(new WsgateSubscriptionEvent('subscribed', info.channel, info, this.subscription(info.channel))),
      onUnsubscribed: (channel) => this.dispatchEvent(new WsgateSubscriptionEvent('unsubscribed', channel, null, null)),
      onPublication: (pub) => this.dispatchEvent(new WsgatePublicationEvent(pub)),
      onGap: (gap) => this.dispatchEvent(new WsgateGapEvent(gap)),
      onError: (err) => this.dispatchEvent(new WsgateErrorEvent(err)),
    };
  }

  /**
   * Schedules the refresh of a token that lasts expiresIn more seconds (0: never).
   * @param {number} expiresIn
   */
  #scheduleRefresh(expiresIn) {
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (expiresIn > 0 && this.#auth.renewable) {
      this.#refreshTimer = setTimeout(() => void this.#refresh(), refreshDelay(expiresIn, this.#opts.random));
    }
  }

  /**
   * Refreshes the connection's identity: a fresh token from getToken, sent in a refresh request.
   * A failure (getToken's, or a 2xx refusal, or no reply) is reported as an error event and tried
   * again with backoff while the connection lasts; a 1xx refusal is reported and left: the server
   * then closes with 4501 at the expiry, and the reconnect asks getToken for a token again.
   */
  async #refresh() {
    if (this.#refreshing || !this.#ready || !this.#auth.renewable) {
      return;
    }
    this.#refreshing = true;
    const gen = this.#gen;
    try {
      for (let attempt = 0; gen === this.#gen;) {
        try {
          this.#auth.expire();
          const token = await this.#auth.fresh();
          if (gen !== this.#gen) {
            return;
          }
          const result = await this.#request('refresh', undefined, { token });
          if (gen !== this.#gen) {
            return;
          }
          const expiresIn = Number(result.expires_in) || 0;
          this.#auth.accepted(expiresIn);
          this.#scheduleRefresh(expiresIn);
          this.dispatchEvent(new WsgateRefreshedEvent(expiresIn));
          return;
        } catch (err) {
          if (gen !== this.#gen) {
            return;
          }
          this.dispatchEvent(new WsgateErrorEvent(err));
          if (err instanceof PubSubError && !err.temporary) {
            return;
          }
          await this.#wait(++attempt);
        }
      }
    } finally {
      if (gen === this.#gen) {
        this.#refreshing = false;
      }
    }
  }

  /**
   * The connection closed; willReconnect says whether another comes. A close 4501 (the token
   * expired) makes the next connection ask getToken for a fresh one; 4001 is told as an
   * unauthorized event.
   * @param {import('./wsgate.js').WsgateCloseEvent} ev
   */
  #lost(ev) {
    const willReconnect = ev.willReconnect;
    this.#ready = false;
    this.#gen++;
    this.#refreshing = false;
    clearTimeout(this.#refreshTimer);
    this.#refreshTimer = undefined;
    if (ev.code === CloseCode.TOKEN_EXPIRED) {
      this.#auth.expire();
    }
    if (ev.code === CloseCode.UNAUTHORIZED && this.#auth.enabled && !this.#denied) {
      this.#auth.expire();
      this.dispatchEvent(new WsgateUnauthorizedEvent(ev.code, ev.reason));
    }
    this.#denied = false;
    clearTimeout(this.#pingTimer);
    this.#pingTimer = undefined;
    this.#waits.forEach((end) => end());
    for (const [id, p] of this.#pending) {
      if (p.onWire) {
        this.#settle(id, new RequestError(`wsgate: ${p.op}: the connection was lost before the reply`, 'disconnected', true));
      } else if (!willReconnect) {
        // Waiting here, or in the transport's outbox (which the close event hands back): never sent.
        this.#settle(id, new RequestError(`wsgate: ${p.op}: the client closed`, 'closed', false));
      }
    }
    for (const rec of this.#subs.values()) {
      clearTimeout(rec.retry);
      rec.state = 'subscribing';
      resetDelivery(rec);
      if (!willReconnect) {
        settleReady(rec, new RequestError(`wsgate: subscribe ${JSON.stringify(rec.channel)}: the client closed`, 'closed', false));
      }
    }
  }

  /**
   * One frame from the server.
   * @param {unknown} data
   * @param {boolean} binary
   */
  #received(data, binary) {
    this.#lastSeen = Date.now();
    let msg;
    try {
      msg = binary ? undefined : JSON.parse(/** @type {string} */ (data));
    } catch {
      // reported below
    }
    if (typeof msg !== 'object' || msg === null) {
      this.dispatchEvent(new WsgateErrorEvent(new Error(`wsgate: a frame that is not a wsgate.v1 JSON object: ${binary ? 'binary' : String(data).slice(0, 100)}`)));
      return;
    }
    if (msg.push !== undefined) {
      const rec = this.#subs.get(msg.channel);
      if ((msg.push === 'pub' || msg.push === 'gap') && rec) {
        this.#pushed(rec, msg);
      } else if (msg.push === 'presence' && rec) {
        this.#presenceChanged(rec, msg.join, msg.leave);
      } else if (msg.push === 'refresh') {
        void this.#refresh();
      } else if (msg.push === 'subscribe' && typeof msg.channel === 'string' && this.#ready) {
        this.#serverSubscribed(msg, false);
      } else if (msg.push === 'unsubscribe' && rec) {
        this.#ended(rec);
      }
      return; // ping, or for a channel no longer subscribed: liveness is all it brings
    }
    const p = this.#pending.get(msg.id);
    const e = msg.error;
    if (e) {
      const err = new PubSubError(Number(e.code), String(e.message), p?.op, p?.channel);
      if (p) {
        this.#settle(msg.id, err);
      } else {
        this.dispatchEvent(new WsgateErrorEvent(err)); // the server could not read a frame's id
      }
    } else if (p) {
      this.#settle(msg.id, null, p.op === 'rpc' ? msg.result : msg.result ?? {});
    }
  }

  /** One timer per client: it fires pingTimeout after the last frame, re-armed lazily. */
  #watch() {
    const timeout = this.#opts.pingTimeout;
    if (!timeout || !Number.isFinite(timeout)) {
      return;
    }
    const left = this.#lastSeen + timeout - Date.now();
    if (left > 0) {
      this.#pingTimer = setTimeout(() => this.#watch(), left);
      return;
    }
    this.#pingTimer = undefined;
    this.drop(`no frame from the server for ${timeout} ms`);
  }
}

/**
 * Forgets what a subscription held for the connection it was on (the pushes before the reply, a
 * catch-up and the pushes it held): a new subscribe recovers from the last publication delivered.
 * @param {SubRecord} rec
 */
function resetDelivery(rec) {
  rec.early = [];
  rec.catchup = null;
  rec.held = [];
}

/**
 * Settles a subscription's ready promise, once.
 * @param {SubRecord} rec
 * @param {Error | null} err
 * @param {SubscribedInfo} [info]
 */
function settleReady(rec, err, info) {
  if (rec.settled) {
    return;
  }
  rec.settled = true;
  if (err) {
    rec.reject(err);
  } else {
    rec.resolve(/** @type {SubscribedInfo} */ (info));
  }
}

/**
 * s cut to a close reason's 123 UTF-8 bytes.
 * @param {string} s
 * @returns {string}
 */
function truncateReason(s) {
  const enc = new TextEncoder();
  while (enc.encode(s).byteLength > 123) {
    s = s.slice(0, -1);
  }
  return s;
}

/**
 * Calls an application callback; what it throws is reported, as for an event listener, and does
 * not break the client.
 * @template {unknown[]} A
 * @param {((...args: A) => void) | undefined} fn
 * @param {A} args
 */
function call(fn, ...args) {
  try {
    fn?.(...args);
  } catch (err) {
    queueMicrotask(() => {
      throw err;
    });
  }
}
