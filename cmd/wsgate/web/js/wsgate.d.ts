// Types of wsgate's browser client, /js/wsgate.js. Written by hand; scripts/test-web checks them
// against the module's JSDoc and a usage file with the TypeScript compiler.

/** Close codes (RFC 6455 §7.4.1 and the IANA registry). 1005, 1006 and 1015 are only ever reported. */
export declare const CloseCode: Readonly<{
  NORMAL: 1000;
  GOING_AWAY: 1001;
  PROTOCOL_ERROR: 1002;
  UNSUPPORTED_DATA: 1003;
  NO_STATUS: 1005;
  ABNORMAL: 1006;
  INVALID_PAYLOAD: 1007;
  POLICY_VIOLATION: 1008;
  MESSAGE_TOO_BIG: 1009;
  MANDATORY_EXTENSION: 1010;
  INTERNAL_ERROR: 1011;
  SERVICE_RESTART: 1012;
  TRY_AGAIN_LATER: 1013;
  BAD_GATEWAY: 1014;
  TLS_HANDSHAKE: 1015;
  /** wsgate.v1's own: the token, or the backend, identified no one (terminal). */
  UNAUTHORIZED: 4001;
  /** No connect within the server's connect timeout (terminal). */
  CONNECT_TIMEOUT: 4002;
  /** Disconnected by the application, its API or backend (terminal). */
  DISCONNECTED: 4003;
  /** The token expired and was not refreshed in time: reconnect with a fresh one. */
  TOKEN_EXPIRED: 4501;
  /** The user has as many connections as allowed: reconnect later. */
  CONNECTION_LIMIT: 4503;
}>;

/**
 * Codes after which the client reconnects, besides 4500–4999; every other code is terminal. 1013 is
 * also wsgate's "slow consumer" close: the client fell behind, reconnects and recovers.
 */
export declare const RECONNECT_CODES: readonly number[];

/** Whether a connection closed with code should be reconnected (the shared close-code policy). */
export declare function shouldReconnect(code: number): boolean;

/** Option defaults; delays in milliseconds. */
export declare const defaults: Readonly<{
  minDelay: number;
  maxDelay: number;
  factor: number;
  maxAttempts: number;
  stableAfter: number;
  probe: boolean;
  outboxMessages: number;
  outboxBytes: number;
}>;

export interface Backoff {
  minDelay: number;
  maxDelay: number;
  factor: number;
}

/**
 * Wait before reconnect attempt `attempt` (1 for the first), in whole milliseconds: uniform in
 * [0, min(maxDelay, minDelay × factor^(attempt−1))) — exponential backoff with full jitter.
 */
export declare function backoffDelay(attempt: number, backoff: Backoff, random?: () => number): number;

/**
 * The wait a Retry-After header asks (seconds, or an HTTP date), in whole milliseconds, plus a jitter
 * uniform in [0, 1000); -1 when the value is missing or malformed.
 */
export declare function retryAfterDelay(value: string | null | undefined, random?: () => number, now?: number): number;
/** the longest Retry-After the client honours, ms (an hour); a longer one is cut to it */
export declare const maxRetryAfter: number;

/** send() failed because the client is closed or closing. */
export declare class ClosedError extends Error {
  constructor(message: string);
}

/** send() failed because the outbox has no room for the message. */
export declare class OutboxFullError extends Error {
  constructor(message: string, size: number);
  /** Size of the refused message in bytes (UTF-8 for text). */
  size: number;
}

/**
 * connecting: first attempt after connect(); open; reconnecting: waiting for or making a reconnect
 * attempt; closing: close() was called and the handshake is under way; closed: initial and final.
 */
export type State = 'connecting' | 'open' | 'reconnecting' | 'closing' | 'closed';

/** The part of the WebSocket API the client uses: the browser's WebSocket and Node's ws both fit. */
export interface WebSocketLike {
  readyState: number;
  binaryType: string;
  /** The negotiated subprotocol, '' for none. */
  protocol?: string;
  send(data: string | ArrayBuffer | ArrayBufferView): void;
  close(code?: number, reason?: string): void;
  addEventListener(type: string, listener: (ev: any) => void): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface WsgateClientOptions {
  /** Subprotocols to offer. */
  protocols?: string | string[];
  /** WebSocket implementation; globalThis.WebSocket by default. In Node pass the ws package. */
  WebSocket?: WebSocketConstructor;
  /** Ceiling of the first reconnect delay, ms. Default 500. */
  minDelay?: number;
  /** Largest reconnect delay, ms. Default 30000. */
  maxDelay?: number;
  /** Growth of the delay ceiling per attempt. Default 2. */
  factor?: number;
  /** Reconnect attempts in a row before giving up. Default Infinity. */
  maxAttempts?: number;
  /** A connection open at least this long, ms, restarts the backoff at attempt 1. Default 5000. */
  stableAfter?: number;
  /**
   * After a handshake that failed before the connection opened, when the implementation hides the
   * HTTP status (browsers), ask the server with a HEAD request of the same URL over http(s) whether
   * it sheds load: a 503 or 429 with Retry-After sets the wait (plus up to 1 s of jitter) instead of
   * the backoff. Default true.
   */
  probe?: boolean;
  /** Most messages held while disconnected. Default 100. */
  outboxMessages?: number;
  /** Most bytes held while disconnected (UTF-8 for text). Default 1 MiB. */
  outboxBytes?: number;
  /** Uniform in [0, 1), for the jitter. Default Math.random. */
  random?: () => number;
  /**
   * Called before every connection attempt, which waits for it (to fetch a token, say); a
   * rejection fails the attempt like a refused connection: an error event, a close event (1006),
   * and a reconnect after the usual backoff.
   */
  beforeConnect?: () => Promise<void> | void;
}

/** A message the client was given: text, or binary as given (binary is copied while it waits). */
export type OutgoingMessage = string | ArrayBuffer | Uint8Array;

export declare class WsgateOpenEvent extends Event {
  constructor(reconnected: boolean, flushed: number, url?: string);
  /** Whether a connection had been lost or had failed before this one. */
  reconnected: boolean;
  /** Outbox messages sent on this connection as it opened. */
  flushed: number;
  /** The endpoint this connection went to (one of client.urls). */
  url: string;
}

export declare class WsgateMessageEvent extends Event {
  constructor(data: string | ArrayBuffer, binary: boolean);
  /** A string for a text message, an ArrayBuffer for a binary one. */
  data: string | ArrayBuffer;
  binary: boolean;
}

export declare class WsgateCloseEvent extends Event {
  constructor(init: { code: number; reason: string; wasClean: boolean; willReconnect: boolean; unsent: OutgoingMessage[]; url?: string; status?: number });
  /** The endpoint of the connection or attempt that ended. */
  url: string;
  /** The close code; 1006 when the connection broke or never opened. */
  code: number;
  reason: string;
  /** Whether both sides exchanged close frames. */
  wasClean: boolean;
  /** Whether a reconnect follows (a reconnecting event comes next). */
  willReconnect: boolean;
  /** Messages still in the outbox when the client gave up: never sent. */
  unsent: OutgoingMessage[];
  /** The HTTP status of a refused handshake when the implementation shows it (Node's ws does; browsers do not), else 0. */
  status: number;
}

export declare class WsgateErrorEvent extends Event {
  constructor(error: unknown);
  /** The cause when the implementation gives one (Node's ws does; browsers do not). */
  error: unknown;
  message: string;
}

export declare class WsgateReconnectingEvent extends Event {
  constructor(attempt: number, delay: number, url?: string);
  /** 1 for the first attempt after a loss, then 2, 3, … */
  attempt: number;
  /** Milliseconds until the attempt starts. */
  delay: number;
  /** The endpoint the attempt goes to. */
  url: string;
}

export declare class WsgateStateEvent extends Event {
  constructor(state: State, previous: State);
  state: State;
  previous: State;
}

export interface WsgateEventMap {
  open: WsgateOpenEvent;
  message: WsgateMessageEvent;
  close: WsgateCloseEvent;
  error: WsgateErrorEvent;
  reconnecting: WsgateReconnectingEvent;
  state: WsgateStateEvent;
}

/**
 * A WebSocket client that reconnects with exponential backoff and full jitter, stops on terminal
 * close codes and on close(), and holds messages sent while disconnected in a bounded outbox.
 */
export declare class WsgateClient extends EventTarget {
  /**
   * @param url ws:// or wss://; http(s):// and, in a page, relative URLs map to the matching
   *   WebSocket URL. Throws SyntaxError for other schemes. Several URLs are endpoints of one
   *   service (cluster nodes): the client starts at a random one and moves to the next when its
   *   connection fails or is lost with a reconnectable code; RangeError for an empty array.
   */
  constructor(url: string | URL | Array<string | URL>, options?: WsgateClientOptions);
  /** The WebSocket URL of the endpoint in use, or of the next attempt. */
  readonly url: string;
  /** Every endpoint's WebSocket URL, in the order given. */
  readonly urls: string[];
  readonly state: State;
  /** Messages and bytes waiting in the outbox. */
  readonly outbox: { messages: number; bytes: number };
  /** Starts connecting; a no-op unless closed; throws ClosedError while closing. */
  connect(): void;
  /**
   * Sends text (string) or binary data; while not open it waits in the outbox.
   * Throws TypeError, ClosedError or OutboxFullError.
   */
  send(data: string | ArrayBuffer | ArrayBufferView): 'sent' | 'queued';
  /** Closes with code (1000 or 3000–4999) and reason (≤ 123 UTF-8 bytes) and stops reconnecting. */
  close(code?: number, reason?: string): void;
  /** The subprotocol the server chose for the open connection; '' for none or when not open. */
  readonly protocol: string;
  /**
   * Drops the connection at once, without a closing handshake, as if the network had failed: the
   * close event (1006, not clean, with reason) fires before it returns and the client reconnects by
   * its policy. For dead links and tests; a no-op without a socket or while closing.
   */
  drop(reason?: string): void;
  /** Adds a listener and returns a function that removes it. */
  on<K extends keyof WsgateEventMap>(type: K, listener: (ev: WsgateEventMap[K]) => void): () => void;
  addEventListener<K extends keyof WsgateEventMap>(
    type: K,
    listener: (ev: WsgateEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  removeEventListener<K extends keyof WsgateEventMap>(
    type: K,
    listener: (ev: WsgateEventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  removeEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | EventListenerOptions): void;
}

/** Creates a client and connects it. */
export declare function connect(url: string | URL | Array<string | URL>, options?: WsgateClientOptions): WsgateClient;

/**
 * The endpoint after current to try: round robin, except that those which failed after recent (a
 * Date.now() timestamp) go last, the one that failed longest ago first among them.
 */
export declare function nextEndpoint(current: number, failedAt: number[], recent: number): number;
