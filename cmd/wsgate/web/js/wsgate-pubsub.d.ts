// Types of wsgate's pub/sub client, /js/wsgate-pubsub.js. Written by hand; scripts/test-web checks
// them against the module's JSDoc and a usage file with the TypeScript compiler.

import { WsgateClient, type WsgateClientOptions, type WsgateEventMap } from './wsgate.js';

export { refreshDelay } from './wsgate-token.js';

/** The subprotocol name, always offered by PubSubClient. */
export declare const SUBPROTOCOL: 'wsgate.v1';

/**
 * The protocol's error codes: 1xx the request is wrong, 2xx refused now, may succeed later: the
 * server failed (200), the broker did not answer (201) or is at capacity (202), or this connection
 * made more requests than its rate (203).
 */
export declare const ErrorCode: Readonly<{
  BAD_REQUEST: 100;
  UNKNOWN_OP: 101;
  BAD_CHANNEL: 102;
  TOO_LARGE: 103;
  FORBIDDEN: 104;
  NOT_SUBSCRIBED: 105;
  ALREADY_SUBSCRIBED: 106;
  LIMIT_EXCEEDED: 107;
  NOT_TEXT: 108;
  /** No connect yet, or a token (or a backend) that identifies no one. */
  UNAUTHORIZED: 109;
  /** The token's exp has passed: get a fresh one. */
  TOKEN_EXPIRED: 110;
  ALREADY_CONNECTED: 111;
  /** A feature this server, or the channel's namespace, does not offer (rpc, refresh, presence, history). */
  NOT_AVAILABLE: 112;
  INTERNAL: 200;
  UNAVAILABLE: 201;
  FULL: 202;
  RATE_LIMITED: 203;
  /** The user has as many connections as allowed. */
  CONNECTION_LIMIT: 204;
}>;

/** Option defaults of the pub/sub layer, in milliseconds. */
export declare const pubsubDefaults: Readonly<{ pingTimeout: number; requestTimeout: number }>;

/** The server answered a request with an error. */
export declare class PubSubError extends Error {
  constructor(code: number, message: string, op?: string, channel?: string);
  /** The protocol's numeric error code (see ErrorCode). */
  code: number;
  /** The request's op and channel, when the reply matched a request. */
  op: string | undefined;
  channel: string | undefined;
  /** Whether the same request may succeed later (a 2xx code). */
  readonly temporary: boolean;
}

/** A request got no reply. */
export declare class RequestError extends Error {
  constructor(message: string, reason: RequestError['reason'], sent: boolean);
  /**
   * closed: the client is closed or closing, or gave up; disconnected: the connection was lost
   * after the request was sent; timeout: no reply within requestTimeout; unsubscribed: a
   * subscription ended before the server confirmed it.
   */
  reason: 'closed' | 'disconnected' | 'timeout' | 'unsubscribed';
  /** Whether the request reached a socket: if so the server may have applied it. */
  sent: boolean;
}

/** A place in a channel's stream. */
export interface Position {
  epoch: string;
  offset: number;
}

/** A subscriber, in presence replies and presence pushes. */
export interface ClientInfo {
  conn: string;
  /** Present when the server knows the user behind the connection. */
  user?: string;
  /** What the connection's identity shows others (a name, an avatar): the token's info claim, or the backend's. */
  info?: unknown;
}

/** A publication as history returns it. */
export interface StoredPublication {
  offset: number;
  data: unknown;
}

/** A publication delivered to a subscription. */
export interface Publication {
  channel: string;
  epoch: string;
  offset: number;
  data: unknown;
  /**
   * Whether it came from the server's history rather than live: published while this client was
   * disconnected, or dropped by the server for this connection (its send queue was full: a gap).
   */
  recovered: boolean;
}

/** A subscribe the server accepted, the first or one after a reconnect. */
export interface SubscribedInfo {
  channel: string;
  epoch: string;
  /** The channel's position when subscribed, recovered publications included. */
  offset: number;
  /** The position recovery was asked from; null for a fresh subscribe. */
  since: Position | null;
  /** With since: true if every publication after it follows; false if some are lost (resync). */
  recovered: boolean;
  /** Whether this follows a reconnect, or close() and connect(). */
  resubscribed: boolean;
  /** How many recovered publications follow this call; the server may send them in pages. */
  publications: number;
  /**
   * The server subscribed it (at connect, from the token's channels, or with a subscribe push),
   * not this client's subscribe request.
   */
  server: boolean;
}

/**
 * Publications lost while subscribed: those after since, up to and including (epoch, offset).
 * Delivery goes on after (epoch, offset). If epoch is not since.epoch, the rest of since's epoch
 * is lost and offset is the new epoch's position.
 */
export interface GapInfo {
  channel: string;
  /** The last publication delivered before the loss. */
  since: Position;
  epoch: string;
  offset: number;
}

export interface SubscribeOptions {
  /**
   * Every publication, in offset order, exactly once; recovered ones first after a reconnect. The
   * ones the server dropped for this connection (a jump in offsets, or a gap push) are fetched from
   * history and delivered in their place, recovered: true, before the live ones that follow.
   */
  onPublication?: (pub: Publication) => void;
  /**
   * A connection subscribed (with presence: true), once per connection: the server gathers the
   * joins and leaves of an interval (100 ms) into one push. This connection's own join may come too.
   */
  onJoin?: (client: ClientInfo, channel: string) => void;
  /** A connection unsubscribed or disconnected (with presence: true), once per connection. */
  onLeave?: (client: ClientInfo, channel: string) => void;
  /** Each accepted subscribe, called before the recovered publications. */
  onSubscribed?: (info: SubscribedInfo) => void;
  /**
   * Publications missed while subscribed could not be had from history (gone, another epoch, or
   * history refused with a 1xx code): told once per loss, and delivery goes on after it. A loss
   * known when a subscribe is accepted is told by onSubscribed instead (recovered: false).
   */
  onGap?: (info: GapInfo) => void;
  /**
   * The server refused a subscribe: 1xx ends the subscription, 2xx is retried with backoff. Also
   * the 1xx refusal of a history request made to fill a gap (op 'history'); onGap follows.
   */
  onError?: (err: PubSubError) => void;
  /** The server ended the subscription (an unsubscribe push): no more deliveries. */
  onUnsubscribed?: (channel: string) => void;
  /** Receive the presence pushes: onJoin and onLeave. */
  presence?: boolean;
  /** Recover from this position on the first subscribe (one saved earlier). */
  since?: Position;
  /** A channel token, for a channel whose namespace asks for one (a private channel). */
  token?: string;
  /**
   * Gives the channel token when there is none (before the first subscribe), and again once when
   * the server answers 110 (expired). Default: the client's getChannelToken.
   */
  getToken?: (channel: string) => Promise<string | null> | string | null;
}

export interface PubSubClientOptions extends Omit<WsgateClientOptions, 'protocols'> {
  /** Ms without any frame from the server before the link is taken as dead and dropped. Default 50000; 0 never. */
  pingTimeout?: number;
  /** Ms a request may wait for its reply, or for a connection when sent while disconnected. Default 10000. */
  requestTimeout?: number;
  /**
   * The first connection's token. With it, or with getToken, every connection sends connect
   * first, and nothing else goes before its reply.
   */
  token?: string | null;
  /**
   * A fresh token: asked before a connection that needs one (none yet, expired, closed with 4501,
   * refused with 110: then once more) and for every refresh, which the client makes by itself a
   * little before the expiry and at once on the server's refresh push. null or '' connects
   * without a token (the server may identify the connection from its cookies). A rejection is
   * reported as an error event and retried with backoff.
   */
  getToken?: () => Promise<string | null> | string | null;
  /** The channel token of a subscription that has neither token nor getToken. */
  getChannelToken?: (channel: string) => Promise<string | null> | string | null;
}

/** The client stopped because the server does not accept its identity. */
export declare class WsgateUnauthorizedEvent extends Event {
  constructor(code: number, reason: string);
  /** 4001 (the server's close), or the connect's error: 109, or 110 twice. */
  code: number;
  reason: string;
}

/** The server accepted a connect: the connection is ready. */
export declare class WsgateConnectedEvent extends Event {
  constructor(client: string, user: string, expiresIn: number, subscribed: string[]);
  /** The connection's name on the server. */
  client: string;
  /** The user the token names; '' for anonymous. */
  user: string;
  /** Seconds the identity lasts; 0 for ever. */
  expiresIn: number;
  /** The channels the server subscribed this connection to. */
  subscribed: string[];
}

/** A refresh went through. */
export declare class WsgateRefreshedEvent extends Event {
  constructor(expiresIn: number);
  expiresIn: number;
}

/** subscribed: the server subscribed this client to a channel; unsubscribed: it ended one it made. */
export declare class WsgateSubscriptionEvent extends Event {
  constructor(type: 'subscribed' | 'unsubscribed', channel: string, info: SubscribedInfo | null, subscription: Subscription | null);
  channel: string;
  /** With subscribed. */
  info: SubscribedInfo | null;
  /** With subscribed. */
  subscription: Subscription | null;
}

/** A publication of a subscription the server made. */
export declare class WsgatePublicationEvent extends Event {
  constructor(publication: Publication);
  publication: Publication;
}

/** Publications lost on a subscription the server made. */
export declare class WsgateGapEvent extends Event {
  constructor(gap: GapInfo);
  gap: GapInfo;
}

/** The events of PubSubClient beside WsgateClient's. */
export interface PubSubEventMap {
  unauthorized: WsgateUnauthorizedEvent;
  connected: WsgateConnectedEvent;
  refreshed: WsgateRefreshedEvent;
  subscribed: WsgateSubscriptionEvent;
  unsubscribed: WsgateSubscriptionEvent;
  publication: WsgatePublicationEvent;
  gap: WsgateGapEvent;
}

/** Publications of a channel, and the position of its last one (its top). */
export interface HistoryResult {
  epoch: string;
  offset: number;
  /** False when publications after `since` are gone, or the epoch changed (also between pages). */
  complete: boolean;
  /** Publications after the last one returned exist (beyond limit, or beyond this page): ask from it. */
  more: boolean;
  /** Oldest first. */
  publications: StoredPublication[];
}

export interface HistoryOptions {
  /** The publications after this position; without, the latest ones. */
  since?: Position;
  /** Most publications returned, 1–1000; 0 or none: 100. */
  limit?: number;
  /**
   * Follow the server's pages until limit publications or no more (the default), or return the
   * server's first page (false), whose more says that others follow.
   */
  all?: boolean;
}

/** Who is subscribed to a channel, ordered by connection. */
export interface PresenceResult {
  /** Subscribers of the channel on the server's node. */
  total: number;
  clients: ClientInfo[];
  /** Set when more follow (limit reached, or one page asked): ask again with after: next. */
  next?: string;
}

export interface PresenceOptions {
  /**
   * Follow the server's pages until the list is whole or holds limit clients (the default), or
   * return one page (false).
   */
  all?: boolean;
  /** Most clients returned: with all, 10000 by default; in one page 1–1000, 0 or none: 100. */
  limit?: number;
  /** Start after this connection: the next of the page before. */
  after?: string;
}

/** A subscription to one channel, made by PubSubClient.subscribe. */
export declare class Subscription {
  private constructor();
  readonly channel: string;
  /** subscribing (sent or waiting for a connection), subscribed, failed (refused with 1xx), unsubscribed. */
  readonly state: 'subscribing' | 'subscribed' | 'failed' | 'unsubscribed';
  /** The position of the last publication delivered, or of the subscribe; null before the first. */
  readonly position: Position | null;
  /**
   * The first accepted subscribe, once the publications it recovers (fetched in pages if need be)
   * are delivered; rejects with PubSubError (refused) or RequestError (closed, unsubscribed).
   */
  readonly ready: Promise<SubscribedInfo>;
  /** Stops the deliveries at once and tells the server if it knows the subscription. */
  unsubscribe(): Promise<void>;
}

/**
 * A WsgateClient speaking wsgate.v1. Requests made while no connection is open wait, in call order
 * and within the outbox limits, for at most requestTimeout. Subscriptions last until unsubscribe()
 * and are sent again, from their last position, on every new connection.
 */
export declare class PubSubClient extends WsgateClient {
  constructor(url: string | URL | Array<string | URL>, options?: PubSubClientOptions);
  on<K extends keyof (WsgateEventMap & PubSubEventMap)>(type: K, listener: (ev: (WsgateEventMap & PubSubEventMap)[K]) => void): () => void;
  addEventListener<K extends keyof (WsgateEventMap & PubSubEventMap)>(
    type: K,
    listener: (ev: (WsgateEventMap & PubSubEventMap)[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  addEventListener(type: string, listener: EventListenerOrEventListenerObject | null, options?: boolean | AddEventListenerOptions): void;
  /** Throws PubSubError 106 if this client already has a subscription to channel (its own, or the server's). */
  subscribe(channel: string, options?: SubscribeOptions): Subscription;
  /**
   * Replaces the token for the next connect. The open connection keeps its identity: to be
   * someone else now, close() and connect() again.
   */
  setToken(token: string | null): void;
  /** The subscription to channel: this client's, or one the server made; null if none. */
  subscription(channel: string): Subscription | null;
  /** Calls method of the application's backend with data (any JSON value); resolves with its result. */
  rpc(method: string, data?: unknown): Promise<unknown>;
  /** Publishes data (any JSON value); resolves with its position. */
  publish(channel: string, data: unknown): Promise<Position>;
  /**
   * Who is subscribed to channel. The server pages the list; by default every page is fetched, up
   * to limit clients; if its send queue stays full the result is cut short, with next set.
   */
  presence(channel: string, options?: PresenceOptions): Promise<PresenceResult>;
  /**
   * The first limit publications after since, or the latest limit (0 or none: 100). The server
   * pages its replies; by default every page is fetched, up to limit; if its send queue stays full
   * the result is cut short, with more set.
   */
  history(channel: string, options?: HistoryOptions): Promise<HistoryResult>;
  /** Resolves with the round-trip time in ms. */
  ping(): Promise<number>;
}
