// wsgate's token keeping, for the pub/sub client (./wsgate-pubsub.js): which token a connect or a
// refresh sends, when to ask the application's getToken() for a fresh one, and when to refresh a
// live connection. A dependency-free ES module, served at /js/wsgate-token.js.
//
// The rules, in one place:
//   - the token option is the first connection's; getToken() gives every later one that needs it:
//     when there is none yet, when the last one expired (by the server's expires_in), after a close
//     4501 (token expired), after a connect error 110, and for every refresh;
//   - null or '' from getToken() means no token: the connect goes without one, and the server
//     decides from the upgrade's cookies or headers (or refuses);
//   - concurrent askers share one getToken() call.

/**
 * The most a refresh comes before the token's expiry, in ms, before the jitter: a token of an hour
 * is refreshed 30 to 60 s before it expires, one of 10 s 1 to 2 s before.
 */
export const refreshLeadMax = 30000;

/**
 * When to refresh a token that expires in expiresIn seconds: in ms from now, a tenth of its life
 * before the expiry (at most refreshLeadMax), plus as much again at random, so that the clients
 * that connected together do not all ask the backend for a token at the same moment.
 * @param {number} expiresIn seconds, as the server's connect and refresh replies give it
 * @param {() => number} [random] uniform in [0, 1)
 * @returns {number} milliseconds, never negative
 */
export function refreshDelay(expiresIn, random = Math.random) {
  const life = expiresIn * 1000;
  const lead = Math.min(refreshLeadMax, life / 10);
  return Math.max(0, Math.floor(life - lead * (1 + random())));
}

/**
 * The application's token source: the token option and the getToken() callback.
 */
export class TokenSource {
  /** @type {(() => Promise<string | null | undefined> | string | null | undefined) | undefined} */ #getToken;
  /** @type {string | null | undefined} undefined: none yet */ #token;
  #stale = false;
  #expiresAt = 0; // Date.now() when the token lapses, 0 if unknown or never
  /** @type {Promise<string | null> | undefined} */ #fetching;

  /**
   * @param {string | null | undefined} token
   * @param {(() => Promise<string | null | undefined> | string | null | undefined) | undefined} getToken
   */
  constructor(token, getToken) {
    if (getToken !== undefined && typeof getToken !== 'function') {
      throw new TypeError('wsgate: getToken must be a function');
    }
    if (token !== undefined && token !== null && typeof token !== 'string') {
      throw new TypeError('wsgate: token must be a string');
    }
    this.#token = token;
    this.#getToken = getToken;
  }

  /** Whether the client identifies itself: it sends connect first on every connection. */
  get enabled() {
    return this.#token !== undefined || this.#getToken !== undefined;
  }

  /** Whether a fresh token can be had: getToken was given. */
  get renewable() {
    return this.#getToken !== undefined;
  }

  /** The token the next connect sends: null for none. */
  get current() {
    return this.#token ?? null;
  }

  /**
   * Replaces the token, as if getToken had given it.
   * @param {string | null} token
   */
  set(token) {
    if (token !== null && typeof token !== 'string') {
      throw new TypeError('wsgate: token must be a string, or null for none');
    }
    this.#token = token || null;
    this.#stale = false;
    this.#expiresAt = 0;
  }

  /** The token is no good any more (expired, refused as expired): the next one comes from getToken. */
  expire() {
    this.#stale = true;
  }

  /**
   * The server accepted the token; it lasts expiresIn more seconds (0: never, or unknown).
   * @param {number} expiresIn
   */
  accepted(expiresIn) {
    this.#expiresAt = expiresIn > 0 ? Date.now() + expiresIn * 1000 : 0;
  }

  /**
   * Makes sure the token is fit for a new connection: fetched from getToken when there is none
   * yet, or it is stale or expired. Throws what getToken throws.
   * @returns {Promise<void>}
   */
  async prepare() {
    const expired = this.#expiresAt > 0 && Date.now() >= this.#expiresAt;
    if (this.#getToken && (this.#token === undefined || this.#stale || expired)) {
      await this.fresh();
    }
  }

  /**
   * A fresh token from getToken (one call shared by concurrent askers); it becomes current.
   * @returns {Promise<string | null>}
   */
  fresh() {
    const get = this.#getToken;
    if (!get) {
      return Promise.resolve(this.current);
    }
    this.#fetching ??= (async () => {
      try {
        const t = await get();
        if (t !== undefined && t !== null && typeof t !== 'string') {
          throw new TypeError(`wsgate: getToken() gave a ${typeof t}, want a string, or null for none`);
        }
        this.#token = t || null;
        this.#stale = false;
        this.#expiresAt = 0;
        return this.#token;
      } finally {
        this.#fetching = undefined;
      }
    })();
    return this.#fetching;
  }
}
