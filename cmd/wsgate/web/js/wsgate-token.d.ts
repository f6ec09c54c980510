// Types of wsgate's token keeping, /js/wsgate-token.js (used by the pub/sub client). Written by
// hand; scripts/test-web checks them with the TypeScript compiler.

/** The most a refresh comes before the token's expiry, in ms, before the jitter. */
export declare const refreshLeadMax: number;

/**
 * When to refresh a token that expires in expiresIn seconds, in ms from now: a tenth of its life
 * before the expiry (at most refreshLeadMax), plus as much again at random.
 */
export declare function refreshDelay(expiresIn: number, random?: () => number): number;

/** The application's token source: the token option and the getToken() callback. */
export declare class TokenSource {
  constructor(token: string | null | undefined, getToken: (() => Promise<string | null | undefined> | string | null | undefined) | undefined);
  /** Whether the client identifies itself: connect first on every connection. */
  readonly enabled: boolean;
  /** Whether a fresh token can be had (getToken was given). */
  readonly renewable: boolean;
  /** The token the next connect sends; null for none. */
  readonly current: string | null;
  /** Replaces the token, as if getToken had given it. */
  set(token: string | null): void;
  /** The token is no good any more: the next one comes from getToken. */
  expire(): void;
  /** The server accepted the token, which lasts expiresIn more seconds (0: never). */
  accepted(expiresIn: number): void;
  /** Fetches a token from getToken when there is none yet, or it is stale or expired. */
  prepare(): Promise<void>;
  /** A fresh token from getToken (one call shared by concurrent askers); it becomes current. */
  fresh(): Promise<string | null>;
}
