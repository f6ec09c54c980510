// wsgate browser client: a WebSocket that reconnects by itself, with a bounded outbox.
//
// A dependency-free ES module, served by wsgate at /js/wsgate.js (types: /js/wsgate.d.ts). Use it
// from a page with no build step:
//
//   <script type="module">
//     import { WsgateClient } from '/js/wsgate.js';
//     const client = new WsgateClient('/ws');
//     client.on('message', (ev) => console.log(ev.data));
//     client.connect();
//     client.send('Hello!');   // queued until the connection is open
//   </script>
//
// In Node, pass a WebSocket implementation: new WsgateClient(url, { WebSocket: require('ws') }).
//
// Several URLs (new WsgateClient(['wss://a.example/ws', 'wss://b.example/ws'])) are the nodes of
// one service: the client starts at a random one, to spread the load, and each reconnect attempt
// goes to the next one, those that failed recently last.
//
// A server that sheds load refuses a handshake with 503 (or 429) and Retry-After: the client waits
// that long, plus up to a second of jitter, instead of its backoff. Node's ws shows the refusal; a
// browser hides it, so after a handshake that failed before the connection opened the client asks
// the server with a HEAD request of the same URL over http(s) (options.probe), which a shedding
// wsgate answers 503 + Retry-After. Otherwise it backs off as usual.
//
// Delivery is at most once. The outbox holds what is sent while no connection is open and is flushed,
// in order, when one opens; a message already handed to a socket that then dies is lost, as with a
// plain WebSocket. Nothing is dropped silently: send() throws when the outbox is full, and the close
// event that ends the client lists what was still in the outbox (unsent).

/**
 * Close codes (RFC 6455 §7.4.1 and the IANA registry). 1005, 1006 and 1015 are only ever reported.
 * @readonly
 */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  INVALID_PAYLOAD: 1007,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  MANDATORY_EXTENSION: 1010,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_GATEWAY: 1014,
  TLS_HANDSHAKE: 1015,
  // wsgate.v1's own (docs/PROTOCOL.md): 4000-4499 terminal, 4500-4999 reconnect.
  UNAUTHORIZED: 4001, // the token, or the backend, identified no one
  CONNECT_TIMEOUT: 4002, // no connect within the server's connect timeout
  DISCONNECTED: 4003, // disconnected by the application (its API or backend)
  TOKEN_EXPIRED: 4501, // the token expired and was not refreshed in time: reconnect with a fresh one
  CONNECTION_LIMIT: 4503, // the user has as many connections as allowed: reconnect later
});

/**
 * The codes after which a client reconnects, besides the application range 4500–4999: the server is
 * going away or restarting (1001, 1012), overloaded or this client fell behind (1013, wsgate's "slow
 * consumer" close: reconnect and recover what was missed), failed (1011), a gateway failed (1014), or
 * the connection broke without a close frame or without a code (1006, 1005). Everything else is
 * terminal: a normal close (1000) means the server is done with this client, and protocol, data,
 * policy and size errors (1002, 1003, 1007, 1008, 1009, 1010), TLS failures (1015), the registered
 * range 3000–3999, the application range 4000–4499 and unknown codes would only repeat.
 * @readonly
 */
export const RECONNECT_CODES = Object.freeze([1001, 1005, 1006, 1011, 1012, 1013, 1014]);

/**
 * Reports whether a connection closed with code should be reconnected: the close-code policy shared
 * by the JS client, the CLI and the server's documentation (README, "Close codes").
 * @param {number} code
 * @returns {boolean}
 */
export function shouldReconnect(code) {
  return RECONNECT_CODES.includes(code) || (code >= 4500 && code <= 4999);
}

/**
 * Option defaults. Delays are in milliseconds.
 * @readonly
 */
export const defaults = Object.freeze({
  minDelay: 500,
  maxDelay: 30000,
  factor: 2,
  maxAttempts: Infinity,
  stableAfter: 5000,
  probe: true,
  outboxMessages: 100,
  outboxBytes: 1 << 20,
});

/**
 * The wait before reconnect attempt number attempt (1 for the first): exponential backoff with full
 * jitter, uniform in [0, min(maxDelay, minDelay × factor^(attempt−1))). Spreading the whole range
 * keeps clients that lost the same server from coming back at the same moment.
 * @param {number} attempt 1, 2, …
 * @param {{minDelay: number, maxDelay: number, factor: number}} backoff
 * @param {() => number} [random] uniform in [0, 1); Math.random by default
 * @returns {number} milliseconds, an integer
 */
export function backoffDelay(attempt, backoff, random = Math.random) {
  const { minDelay, maxDelay, factor } = backoff;
  const ceiling = Math.min(maxDelay, minDelay * Math.pow(factor, Math.max(0, attempt - 1)));
  return Math.min(Math.floor(random() * ceiling), Math.max(0, Math.ceil(ceiling) - 1));
}

/**
 * The wait asked by a Retry-After header (RFC 9110 §10.2.3: seconds, or an HTTP date), in ms, plus a
 * jitter uniform in [0, 1000): Retry-After counts whole seconds, and clients told the same second
 * should not all come back at its start. -1 when value is missing or malformed.
 * @param {string | null | undefined} value
 * @param {() => number} [random] uniform in [0, 1); Math.random by default
 * @param {number} [now] Date.now() by default, for an HTTP date
 * @returns {number} milliseconds, an integer, or -1
 */
export function retryAfterDelay(value, random = Math.random, now = Date.now()) {
  const v = (value ?? '').trim();
  let ms = -1;
  if (/^\d+$/.test(v)) {
    ms = Number(v) * 1000;
  } else if (/^[A-Za-z]{3}/.test(v) && !Number.isNaN(Date.parse(v))) { // an HTTP date starts with the day's name
    ms = Math.max(0, Date.parse(v) - now);
  }
  if (ms < 0 || !Number.isFinite(ms)) {
    return -1;
  }
  // A wait past maxRetryAfter is cut to it: setTimeout runs a delay beyond 2^31-1 ms at once,
  // and no server of ours asks for more than a minute.
  return Math.floor(Math.min(ms, maxRetryAfter) + Math.min(random() * 1000, 999));
}

/** the longest Retry-After the client honours, ms (an hour); a longer one is cut to it */
export const maxRetryAfter = 3600 * 1000;

/** ms a probe (see WsgateClientOptions.probe) may take before the client backs off without its answer */
const probeTimeout = 5000;

/** send() failed because the client is closed: call connect() first. */
export class ClosedError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'ClosedError';
  }
}

/** send() failed because the outbox, which holds messages while disconnected, has no room. */
export class OutboxFullError extends Error {
  /**
   * @param {string} message
   * @param {number} size UTF-8 or binary size of the refused message, in bytes
   */
  constructor(message, size) {
    super(message);
    this.name = 'OutboxFullError';
    /** Size of the refused message, in bytes. */
    this.size = size;
  }
}

/** A connection opened; any outbox was flushed just before. */
export class WsgateOpenEvent extends Event {
  /**
   * @param {boolean} reconnected
   * @param {number} flushed
   * @param {string} [url]
   */
  constructor(reconnected, flushed, url = '') {
    super('open');
    /** Whether a connection had been lost or had failed before this one. */
    this.reconnected = reconnected;
    /** How many outbox messages were sent on this connection as it opened. */
    this.flushed = flushed;
    /** The endpoint this connection went to (one of client.urls). */
    this.url = url;
  }
}

/** A message arrived. */
export class WsgateMessageEvent extends Event {
  /**
   * @param {string | ArrayBuffer} data
   * @param {boolean} binary
   */
  constructor(data, binary) {
    super('message');
    /** A string for a text message, an ArrayBuffer for a binary one. */
    this.data = data;
    /** Whether the message came in a binary frame. */
    this.binary = binary;
  }
}

/** A connection closed, or a connection attempt failed (code 1006). */
export class WsgateCloseEvent extends Event {
  /**
   * @param {{code: number, reason: string, wasClean: boolean, willReconnect: boolean, unsent: Array<string | ArrayBuffer | Uint8Array>, url?: string, status?: number}} init
   */
  constructor(init) {
    super('close');
    /** The endpoint of the connection or attempt that ended. */
    this.url = init.url ?? '';
    /** The close code; 1006 when the connection broke or never opened. */
    this.code = init.code;
    /** The close reason, possibly empty. */
    this.reason = init.reason;
    /** Whether both sides exchanged close frames. */
    this.wasClean = init.wasClean;
    /** Whether a reconnect follows (a reconnecting event comes next). */
    this.willReconnect = init.willReconnect;
    /** Messages still in the outbox when the client gave up: they were never sent. */
    this.unsent = init.unsent;
    /**
     * The HTTP status of a refused handshake when the WebSocket implementation shows it (Node's ws
     * does, browsers do not), else 0.
     */
    this.status = init.status ?? 0;
  }
}

/** The connection failed; browsers give no details, the close event that follows has the code. */
export class WsgateErrorEvent extends Event {
  /** @param {unknown} error */
  constructor(error) {
    super('error');
    /** The cause when the WebSocket implementation gives one (Node's ws does), else undefined. */
    this.error = error;
    /** A description, possibly empty. */
    this.message = error instanceof Error ? error.message : '';
  }
}

/** A reconnect attempt is scheduled. */
export class WsgateReconnectingEvent extends Event {
  /**
   * @param {number} attempt
   * @param {number} delay
   * @param {string} [url]
   */
  constructor(attempt, delay, url = '') {
    super('reconnecting');
    /** 1 for the first attempt after a loss, then 2, 3, … */
    this.attempt = attempt;
    /** Milliseconds until the attempt starts. */
    this.delay = delay;
    /** The endpoint the attempt goes to. */
    this.url = url;
  }
}

/** The client's state changed. */
export class WsgateStateEvent extends Event {
  /**
   * @param {State} state
   * @param {State} previous
   */
  constructor(state, previous) {
    super('state');
    this.state = state;
    this.previous = previous;
  }
}

/**
 * connecting: first attempt after connect(); open; reconnecting: waiting for or making a reconnect
 * attempt; closing: close() was called, the handshake is under way; closed: initial and final.
 * @typedef {'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed'} State
 */

/**
 * The part of the WebSocket API the client uses: the browser's WebSocket and Node's ws both fit.
 * @typedef {object} WebSocketLike
 * @property {number} readyState
 * @property {string} binaryType
 * @property {string} [protocol] the negotiated subprotocol, '' for none
 * @property {(data: string | ArrayBuffer | ArrayBufferView) => void} send
 * @property {(code?: number, reason?: string) => void} close
 * @property {(type: string, listener: (ev: any) => void) => void} addEventListener
 */

/** @typedef {new (url: string, protocols?: string | string[]) => WebSocketLike} WebSocketConstructor */

/**
 * @typedef {object} WsgateClientOptions
 * @property {string | string[]} [protocols] subprotocols to offer
 * @property {WebSocketConstructor} [WebSocket] implementation to use; globalThis.WebSocket by default
 * @property {number} [minDelay] ceiling of the first reconnect delay, ms (500)
 * @property {number} [maxDelay] largest reconnect delay, ms (30000)
 * @property {number} [factor] growth of the delay ceiling per attempt (2)
 * @property {number} [maxAttempts] reconnect attempts in a row before giving up (Infinity)
 * @property {number} [stableAfter] a connection open this long, ms, restarts the backoff at attempt 1 (5000)
 * @property {number} [outboxMessages] most messages held while disconnected (100)
 * @property {number} [outboxBytes] most bytes held while disconnected, UTF-8 for text (1 MiB)
 * @property {() => number} [random] uniform in [0, 1), for the jitter; Math.random by default
 * @property {boolean} [probe] after a handshake that failed before the connection opened, when the
 *   implementation hides the HTTP status (browsers), ask the server with a HEAD request of the same
 *   URL whether it sheds load: a 503 or 429 with Retry-After sets the wait (true)
 * @property {() => Promise<void> | void} [beforeConnect] called before every connection attempt, which
 *   waits for it (to fetch a token, say); a rejection fails the attempt like a refused connection
 */

/** @typedef {{data: string | ArrayBuffer | Uint8Array, size: number}} OutboxEntry */

const OPEN = 1; // WebSocket.OPEN, the same in every implementation
const CLOSED = 3; // WebSocket.CLOSED
/** ms an errored socket that is CLOSED may take to fire its close event before it is taken as closed */
const closeAfterError = 100;

/**
 * A WebSocket client that reconnects with exponential backoff and full jitter, stops on terminal
 * close codes (see shouldReconnect) and on close(), and holds messages sent while disconnected in a
 * bounded outbox. Events: open, message, close, error, reconnecting, state.
 */
export class WsgateClient extends EventTarget {
  /** @type {string[]} */ #urls;
  #current = 0; // index in #urls of the endpoint in use, or of the next attempt
  /** @type {number[]} when each endpoint last failed (Date.now()), 0 if never */ #failedAt;
  /** @type {Required<Omit<WsgateClientOptions, 'protocols' | 'beforeConnect'>> & {protocols: string | string[] | undefined, beforeConnect: WsgateClientOptions['beforeConnect']}} */ #opts;
  /** @type {State} */ #state = 'closed';
  /** @type {WebSocketLike | null} */ #socket = null;
  /** @type {ReturnType<typeof setTimeout> | undefined} */ #timer;
  #attempt = 0; // reconnect attempts since the last stable connection
  #openedAt = 0; // when the current connection opened (Date.now()), 0 if it did not
  #everLost = false; // a connection failed or was lost since connect()
  #closeRequested = false;
  #attemptId = 0; // counts attempts, so that a beforeConnect or a probe that settles late finds out it is stale
  /** @type {{status: number, retryAfter: string} | null} the refusal of the attempt under way, when shown */ #refusal = null;
  #statusShown = false; // the implementation shows a refused handshake's response (Node's ws)
  /** @type {OutboxEntry[]} */ #outbox = [];
  #outboxSize = 0;

  /**
   * @param {string | URL | Array<string | URL>} url ws:// or wss://; http(s):// and, in a page,
   *   relative URLs are mapped to the matching WebSocket URL, so '/ws' follows the page's host and
   *   scheme. Several URLs are endpoints of one service (nodes of a cluster): the client starts at a
   *   random one and moves to the next when its connection fails or is lost
   * @param {WsgateClientOptions} [options]
   */
  constructor(url, options = {}) {
    super();
    this.#urls = (Array.isArray(url) ? url : [url]).map(webSocketURL);
    if (this.#urls.length === 0) {
      throw new RangeError('wsgate: want at least one URL');
    }
    this.#failedAt = this.#urls.map(() => 0);
    const opts = { ...defaults, random: Math.random, WebSocket: globalThis.WebSocket, ...options };
    if (typeof opts.WebSocket !== 'function') {
      throw new TypeError('wsgate: no WebSocket implementation: pass options.WebSocket (in Node: the ws package)');
    }
    if (!(opts.minDelay > 0 && opts.maxDelay >= opts.minDelay && opts.factor >= 1)) {
      throw new RangeError('wsgate: want 0 < minDelay <= maxDelay and factor >= 1');
    }
    if (!(opts.outboxMessages >= 0 && opts.outboxBytes >= 0 && opts.maxAttempts >= 0)) {
      throw new RangeError('wsgate: outboxMessages, outboxBytes and maxAttempts must not be negative');
    }
    this.#opts = { protocols: undefined, beforeConnect: undefined, ...opts };
    if (this.#urls.length > 1) { // spread clients over the endpoints
      this.#current = Math.min(Math.floor(opts.random() * this.#urls.length), this.#urls.length - 1);
    }
  }

  /** The WebSocket URL of the endpoint in use, or of the next attempt. */
  get url() {
    return this.#urls[this.#current];
  }

  /** Every endpoint's WebSocket URL, in the order given. */
  get urls() {
    return [...this.#urls];
  }

  /** @returns {State} */
  get state() {
    return this.#state;
  }

  /** Messages and bytes waiting in the outbox. */
  get outbox() {
    return { messages: this.#outbox.length, bytes: this.#outboxSize };
  }

  /** The subprotocol the server chose for the open connection; '' for none, or when not open. */
  get protocol() {
    return (this.#state === 'open' && this.#socket?.protocol) || '';
  }

  /**
   * Starts connecting. It does nothing if the client is already connecting, open or reconnecting,
   * and throws while a close() handshake is under way (wait for its close event).
   */
  connect() {
    if (this.#state === 'closing') {
      throw new ClosedError('wsgate: still closing; connect again after the close event');
    }
    if (this.#state !== 'closed') {
      return;
    }
    this.#closeRequested = false;
    this.#everLost = false;
    this.#attempt = 0;
    this.#setState('connecting');
    this.#dial();
  }

  /**
   * Sends a text (string) or binary (ArrayBuffer, typed array, DataView) message. While not open the
   * message waits in the outbox and is sent when a connection opens.
   * @param {string | ArrayBuffer | ArrayBufferView} data
   * @returns {'sent' | 'queued'}
   * @throws {TypeError} for other data
   * @throws {ClosedError} when the client is closed or closing
   * @throws {OutboxFullError} when the message does not fit the outbox
   */
  send(data) {
    const size = messageSize(data);
    if (this.#state === 'closed' || this.#state === 'closing') {
      throw new ClosedError('wsgate: not connected: call connect() first');
    }
    const sock = this.#socket;
    if (this.#state === 'open' && sock && sock.readyState === OPEN) {
      sock.send(data);
      return 'sent';
    }
    const { outboxMessages, outboxBytes } = this.#opts;
    if (this.#outbox.length + 1 > outboxMessages || this.#outboxSize + size > outboxBytes) {
      throw new OutboxFullError(
        `wsgate: outbox full (${this.#outbox.length}/${outboxMessages} messages, ${this.#outboxSize}/${outboxBytes} bytes): ` +
          `message of ${size} bytes not sent`,
        size,
      );
    }
    this.#outbox.push({ data: copyMessage(data), size });
    this.#outboxSize += size;
    return 'queued';
  }

  /**
   * Closes the connection with code (1000 or 3000–4999) and reason (at most 123 UTF-8 bytes) and
   * stops reconnecting. The close event follows with the code the server answered; when no socket is
   * open (waiting to reconnect) it fires at once. Idempotent.
   * @param {number} [code]
   * @param {string} [reason]
   */
  close(code = CloseCode.NORMAL, reason = '') {
    if (code !== CloseCode.NORMAL && !(code >= 3000 && code <= 4999)) {
      throw new RangeError(`wsgate: close code ${code}: want 1000 or 3000-4999`);
    }
    if (utf8Length(reason) > 123) {
      throw new RangeError('wsgate: close reason longer than 123 UTF-8 bytes');
    }
    if (this.#state === 'closed' || this.#state === 'closing') {
      return;
    }
    this.#closeRequested = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const sock = this.#socket;
    if (sock) {
      this.#setState('closing');
      sock.close(code, reason);
      return;
    }
    const unsent = this.#takeOutbox();
    this.#setState('closed');
    this.dispatchEvent(new WsgateCloseEvent({ code, reason, wasClean: true, willReconnect: false, unsent, url: this.url }));
  }

  /**
   * Drops the connection (open or being attempted) at once, without waiting for a closing
   * handshake, as if the network had failed: the close event (code 1006, not clean, with reason)
   * fires before drop returns, and the client reconnects by its usual policy. It is how a dead link
   * is given up (a socket whose peer vanished may wait minutes for a close frame) and how a test
   * cuts a connection. It does nothing when no socket exists or close() is under way.
   * @param {string} [reason] reported in the close event
   */
  drop(reason = '') {
    const sock = this.#socket;
    if (!sock || this.#state === 'closing') {
      return;
    }
    this.#socket = null; // its own events are ignored from now on
    try {
      sock.close(); // tells a live peer; a dead one never answers, and nobody waits for it
    } catch {
      // closing a socket that never opened may throw in some implementations; it is abandoned anyway
    }
    this.#closed({ code: CloseCode.ABNORMAL, reason, wasClean: false });
  }

  /**
   * Adds listener for type and returns a function that removes it.
   * @param {string} type
   * @param {(ev: any) => void} listener
   * @returns {() => void}
   */
  on(type, listener) {
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  /**
   * Starts a connection attempt: after beforeConnect, if set. close() or connect() meanwhile makes
   * the attempt stale: its end is ignored.
   */
  #dial() {
    const id = ++this.#attemptId;
    const before = this.#opts.beforeConnect;
    if (!before) {
      this.#open();
      return;
    }
    const current = () => id === this.#attemptId && !this.#closeRequested && !this.#socket &&
      (this.#state === 'connecting' || this.#state === 'reconnecting');
    Promise.resolve().then(before).then(() => current() && this.#open(), (err) => {
      if (current()) {
        this.dispatchEvent(new WsgateErrorEvent(err));
        this.#closed({ code: CloseCode.ABNORMAL, reason: `beforeConnect: ${err instanceof Error ? err.message : String(err)}`.slice(0, 123), wasClean: false }, false);
      }
    });
  }

  #open() {
    let sock;
    try {
      sock = new this.#opts.WebSocket(this.url, this.#opts.protocols);
    } catch (err) {
      // The URL was checked, so this is the environment refusing (a CSP, for instance): report it as
      // a failed attempt, which backs off like any other.
      this.dispatchEvent(new WsgateErrorEvent(err));
      this.#closed({ code: CloseCode.ABNORMAL, reason: '', wasClean: false }, false);
      return;
    }
    sock.binaryType = 'arraybuffer';
    this.#socket = sock;
    this.#refusal = null;
    this.#statusShown = typeof (/** @type {any} */ (sock).on) === 'function';
    if (this.#statusShown) {
      // Node's ws hands a refused handshake's response to this listener, and leaves the socket to
      // it: close() ends the attempt (an error event, then close with 1006).
      /** @type {any} */ (sock).on('unexpected-response', (/** @type {any} */ _req, /** @type {any} */ res) => {
        if (sock === this.#socket) {
          this.#refusal = { status: res.statusCode, retryAfter: String(res.headers?.['retry-after'] ?? '') };
        }
        res.resume?.();
        sock.close();
      });
    }
    sock.addEventListener('open', () => sock === this.#socket && this.#opened(sock));
    sock.addEventListener('message', (ev) => {
      if (sock === this.#socket) {
        this.dispatchEvent(new WsgateMessageEvent(ev.data, typeof ev.data !== 'string'));
      }
    });
    sock.addEventListener('error', (ev) => {
      if (sock === this.#socket) {
        this.dispatchEvent(new WsgateErrorEvent(ev.error));
        // Chromium refuses a connection that the page's CSP forbids with this error alone: the
        // socket is CLOSED and no close event comes. Without this the attempt would never end.
        setTimeout(() => {
          if (sock === this.#socket && sock.readyState === CLOSED) {
            this.#socket = null;
            this.#closed({ code: CloseCode.ABNORMAL, reason: '', wasClean: false });
          }
        }, closeAfterError);
      }
    });
    sock.addEventListener('close', (ev) => {
      if (sock === this.#socket) {
        this.#socket = null;
        this.#closed(ev);
      }
    });
  }

  /** @param {WebSocketLike} sock */
  #opened(sock) {
    this.#openedAt = Date.now();
    // Flush before anyone hears of the open, so that what they send goes after the outbox.
    const outbox = this.#takeOutbox();
    for (const m of outbox) {
      sock.send(m);
    }
    this.#failedAt[this.#current] = 0;
    this.#setState('open');
    this.dispatchEvent(new WsgateOpenEvent(this.#everLost, outbox.length, this.url));
  }

  /**
   * @param {{code: number, reason: string, wasClean: boolean}} ev
   * @param {boolean} [dialed] whether the attempt made a socket: one that failed before (in
   *   beforeConnect, or a WebSocket constructor that threw) made no handshake the server could
   *   have refused, so there is nothing to probe for.
   */
  #closed({ code, reason, wasClean }, dialed = true) {
    if (this.#openedAt && Date.now() - this.#openedAt >= this.#opts.stableAfter) {
      this.#attempt = 0;
    }
    const neverOpened = this.#openedAt === 0;
    this.#openedAt = 0;
    const refusal = this.#refusal;
    this.#refusal = null;
    const status = refusal?.status ?? 0;
    this.#everLost = true;
    const url = this.url;
    const retry = !this.#closeRequested && shouldReconnect(code) && this.#attempt < this.#opts.maxAttempts;
    if (!retry) {
      const unsent = this.#takeOutbox();
      this.#setState('closed');
      this.dispatchEvent(new WsgateCloseEvent({ code, reason, wasClean, willReconnect: false, unsent, url, status }));
      return;
    }
    this.#failedAt[this.#current] = Date.now();
    this.#current = nextEndpoint(this.#current, this.#failedAt, Date.now() - this.#opts.maxDelay);
    const attempt = ++this.#attempt;
    this.#setState('reconnecting');
    this.dispatchEvent(new WsgateCloseEvent({ code, reason, wasClean, willReconnect: true, unsent: [], url, status }));
    if (this.#state !== 'reconnecting') { // a close listener called close()
      return;
    }
    const told = refusal && (status === 503 || status === 429) ? retryAfterDelay(refusal.retryAfter, this.#opts.random) : -1;
    if (told >= 0) {
      this.#schedule(attempt, told);
    } else if (dialed && neverOpened && !refusal && !this.#statusShown && code === CloseCode.ABNORMAL && this.#opts.probe &&
      typeof globalThis.fetch === 'function') {
      this.#probe(attempt, url);
    } else {
      this.#schedule(attempt, backoffDelay(attempt, this.#opts, this.#opts.random));
    }
  }

  /**
   * Schedules reconnect attempt number attempt in delay ms and announces it.
   * @param {number} attempt
   * @param {number} delay
   */
  #schedule(attempt, delay) {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#dial();
    }, delay);
    this.dispatchEvent(new WsgateReconnectingEvent(attempt, delay, this.url));
  }

  /**
   * Asks the server whether it refused the handshake to url because it sheds load: a HEAD request of
   * the same URL over http(s), which a shedding wsgate answers 503 with Retry-After (readable from
   * another origin when the server allows it). Then schedules attempt: after Retry-After, or after
   * the usual backoff when the answer says nothing (no server, another status, CORS, a timeout).
   * @param {number} attempt
   * @param {string} url
   */
  async #probe(attempt, url) {
    const id = this.#attemptId;
    let delay = -1;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), probeTimeout);
    try {
      const res = await globalThis.fetch(httpURL(url), { method: 'HEAD', cache: 'no-store', signal: abort.signal });
      if (res.status === 503 || res.status === 429) {
        delay = retryAfterDelay(res.headers.get('Retry-After'), this.#opts.random);
      }
    } catch {
      // unreachable, refused by CORS, timed out: no hint
    } finally {
      clearTimeout(timer);
    }
    if (id !== this.#attemptId || this.#state !== 'reconnecting' || this.#timer !== undefined) {
      return; // close() or connect() meanwhile
    }
    this.#schedule(attempt, delay >= 0 ? delay : backoffDelay(attempt, this.#opts, this.#opts.random));
  }

  /** @returns {Array<string | ArrayBuffer | Uint8Array>} */
  #takeOutbox() {
    const messages = this.#outbox.map((m) => m.data);
    this.#outbox = [];
    this.#outboxSize = 0;
    return messages;
  }

  /** @param {State} state */
  #setState(state) {
    const previous = this.#state;
    if (state !== previous) {
      this.#state = state;
      this.dispatchEvent(new WsgateStateEvent(state, previous));
    }
  }
}

/**
 * The endpoint after current to try: round robin, except that endpoints which failed since recent
 * (a timestamp) go last, the one that failed longest ago first among them. The one that just failed
 * is therefore tried last, and a node that keeps refusing is not tried again before the others.
 * @param {number} current
 * @param {number[]} failedAt per endpoint, Date.now() of its last failure, 0 if none
 * @param {number} recent
 * @returns {number}
 */
export function nextEndpoint(current, failedAt, recent) {
  const n = failedAt.length;
  let best = current;
  let bestKey = Infinity;
  for (let step = 1; step <= n; step++) {
    const i = (current + step) % n;
    // Endpoints in good standing in round-robin order (keys below n), then the recently failed by age.
    const key = failedAt[i] > recent ? n + failedAt[i] : step;
    if (key < bestKey) {
      best = i;
      bestKey = key;
    }
  }
  return best;
}

/**
 * Creates a client and connects it.
 * @param {string | URL | Array<string | URL>} url
 * @param {WsgateClientOptions} [options]
 * @returns {WsgateClient}
 */
export function connect(url, options) {
  const client = new WsgateClient(url, options);
  client.connect();
  return client;
}

/**
 * The ws:// or wss:// URL for url, resolved against the page's location when there is one.
 * @param {string | URL} url
 * @returns {string}
 */
function webSocketURL(url) {
  const u = new URL(url, globalThis.location?.href);
  if (u.protocol === 'http:' || u.protocol === 'https:') {
    u.protocol = u.protocol === 'https:' ? 'wss:' : 'ws:';
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new SyntaxError(`wsgate: ${u.href}: want a ws:, wss:, http: or https: URL`);
  }
  u.hash = '';
  return u.href;
}

/**
 * The http:// or https:// URL of a WebSocket URL, for the probe.
 * @param {string} url
 * @returns {string}
 */
function httpURL(url) {
  const u = new URL(url);
  u.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  return u.href;
}

/**
 * The size of a message in bytes (UTF-8 for text); a TypeError for what cannot be sent.
 * @param {unknown} data
 * @returns {number}
 */
function messageSize(data) {
  if (typeof data === 'string') {
    return utf8Length(data);
  }
  if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
    return data.byteLength;
  }
  throw new TypeError('wsgate: send wants a string, an ArrayBuffer or an ArrayBufferView');
}

/**
 * A copy of a binary message, so that the caller may reuse its buffer while the copy waits.
 * @param {string | ArrayBuffer | ArrayBufferView} data
 * @returns {string | ArrayBuffer | Uint8Array}
 */
function copyMessage(data) {
  if (typeof data === 'string') {
    return data;
  }
  if (data instanceof ArrayBuffer) {
    return data.slice(0);
  }
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
}

/**
 * The length of s encoded as UTF-8 (lone surrogates count as U+FFFD, 3 bytes), without encoding it.
 * @param {string} s
 * @returns {number}
 */
function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) {
      n += 1;
    } else if (c < 0x800) {
      n += 2;
    } else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else {
      n += 3;
    }
  }
  return n;
}
