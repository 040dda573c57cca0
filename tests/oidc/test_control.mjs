// What tests can see and steer beyond OAuth itself:
//
//   GET  /test/stats[?account=alice]   counters from oidc-provider's events
//   GET  /test/issued                  every access and refresh token the
//                                      token endpoint answered, in order
//   POST /test/fail-next-token         {"status":503,"count":2,...}
//   POST /test/hold-next-token         {"count":1}: hold token requests
//   POST /test/release-held            let the held ones through
//   GET  /test/held                    {"waiting","held","released","dropped"}
//
// Counters come from the provider's own events (and, for revocation and
// introspection, which emit no success event, from a post-middleware reading
// the route oidc-provider resolved), so they count what the provider did,
// not what reached the socket.

import { HttpError, readBody, sendError, sendJson } from './http_util.mjs';

const COUNTERS = [
  'authorizations', // authorization responses carrying a code
  'authorization_code_grants', // successful code exchanges
  'refresh_grants', // successful refreshes
  'invalid_grant', // token endpoint answers with error=invalid_grant
  'token_errors', // token endpoint error answers, any error code
  'injected_failures', // token requests failed by fail-next-token
  'revocations', // revocation requests answered 200 (RFC 7009: also for unknown tokens)
  'grants_revoked', // grants revoked: by refresh-token revocation or detected reuse
  'introspections', // introspection requests answered 200, active or not
];

function zero() {
  return Object.fromEntries(COUNTERS.map((name) => [name, 0]));
}

/**
 * Counts per provider and per account: tests that share one provider can
 * each use their own login name and read `?account=` without seeing the
 * others' traffic.
 */
export class Stats {
  #all = zero();
  #byAccount = new Map();

  /** Every token the token endpoint handed out (for leak checks). */
  issued = [];

  add(name, accountId) {
    this.#all[name] += 1;
    if (accountId) {
      let counts = this.#byAccount.get(accountId);
      if (!counts) this.#byAccount.set(accountId, (counts = zero()));
      counts[name] += 1;
    }
  }

  snapshot(accountId) {
    if (accountId === undefined) return { ...this.#all };
    return { ...(this.#byAccount.get(accountId) ?? zero()) };
  }
}

/** Subscribes `stats` to the provider's events and routes. */
export function countEvents(provider, stats) {
  const accountOf = (ctx) => {
    const { entities } = ctx.oidc ?? {};
    return entities?.Account?.accountId
      ?? entities?.RefreshToken?.accountId
      ?? entities?.AccessToken?.accountId
      ?? entities?.AuthorizationCode?.accountId;
  };
  provider.on('authorization.success', (ctx) => {
    stats.add('authorizations', ctx.oidc.session?.accountId);
  });
  provider.on('grant.success', (ctx) => {
    const grantType = ctx.oidc.params.grant_type;
    if (grantType === 'authorization_code') stats.add('authorization_code_grants', accountOf(ctx));
    if (grantType === 'refresh_token') stats.add('refresh_grants', accountOf(ctx));
  });
  provider.on('grant.error', (ctx, error) => {
    stats.add('token_errors', accountOf(ctx));
    if (error.error === 'invalid_grant') stats.add('invalid_grant', accountOf(ctx));
  });
  provider.on('grant.revoked', (ctx) => {
    stats.add('grants_revoked', accountOf(ctx));
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.status !== 200) return;
    if (ctx.oidc?.route === 'revocation') stats.add('revocations', accountOf(ctx));
    if (ctx.oidc?.route === 'introspection') stats.add('introspections', accountOf(ctx));
    if (ctx.oidc?.route === 'token' && ctx.body && typeof ctx.body === 'object') {
      for (const field of ['access_token', 'refresh_token']) {
        if (typeof ctx.body[field] === 'string') stats.issued.push(ctx.body[field]);
      }
    }
  });
}

/**
 * Failures armed for the next token requests. Each armed failure answers one
 * POST to the token endpoint, whatever its grant type, before oidc-provider
 * sees it (so no token is consumed): arm it just before the request to fail.
 */
export class TokenFailures {
  #queue = [];

  /** Parses `OIDC_FAIL_NEXT_TOKEN`, e.g. `503:2`. */
  static fromEnv(value) {
    const failures = new TokenFailures();
    if (value) {
      const match = /^(\d{1,3}):(\d+)$/.exec(value);
      if (!match) throw new Error(`OIDC_FAIL_NEXT_TOKEN must look like \`503:2\`, got \`${value}\``);
      failures.arm({ status: Number(match[1]), count: Number(match[2]) });
    }
    return failures;
  }

  arm(spec) {
    const status = spec.status ?? 503;
    const count = spec.count ?? 1;
    if (!Number.isInteger(status) || !(status === 0 || (status >= 400 && status <= 599))) {
      throw new HttpError(400, 'invalid_request', '`status` must be 0 (drop the connection) or 400..599');
    }
    if (!Number.isInteger(count) || count < 0 || count > 1000) {
      throw new HttpError(400, 'invalid_request', '`count` must be an integer in 0..1000');
    }
    const delayMs = spec.delay_ms ?? 0;
    if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > 60_000) {
      throw new HttpError(400, 'invalid_request', '`delay_ms` must be an integer in 0..60000');
    }
    const retryAfter = spec.retry_after;
    if (retryAfter !== undefined && (!Number.isInteger(retryAfter) || retryAfter < 0)) {
      throw new HttpError(400, 'invalid_request', '`retry_after` must be a non-negative integer');
    }
    const error = spec.error ?? (status >= 500 ? 'temporarily_unavailable' : 'invalid_request');
    if (typeof error !== 'string') throw new HttpError(400, 'invalid_request', '`error` must be a string');
    // Replaces what was armed before: a test states the whole plan at once.
    this.#queue = Array.from({ length: count }, () => ({ status, error, retryAfter, delayMs }));
    return this.pending();
  }

  pending() {
    return this.#queue.length;
  }

  /** Answers the request if a failure is armed; true when it did. */
  async intercept(req, res) {
    const failure = this.#queue.shift();
    if (!failure) return false;
    if (failure.delayMs) await new Promise((resolve) => setTimeout(resolve, failure.delayMs));
    if (failure.status === 0) {
      // A reset rather than an answer: the client sees a transport error.
      req.socket.destroy();
      return true;
    }
    const headers = failure.retryAfter === undefined ? {} : { 'retry-after': String(failure.retryAfter) };
    sendJson(res, failure.status, {
      error: failure.error,
      error_description: 'failure injected by the test fixture',
    }, headers);
    return true;
  }
}

/**
 * Token requests held before oidc-provider reads them, to stop a client in
 * the middle of a refresh: each held request waits until
 * `POST /test/release-held` lets it through, or until its client's
 * connection closes (a client killed mid-request), and is then dropped
 * unprocessed: no token is consumed or rotated.
 */
export class TokenHolds {
  #armed = 0;
  #waiting = new Set();
  held = 0;
  released = 0;
  dropped = 0;

  arm(spec) {
    const count = spec.count ?? 1;
    if (!Number.isInteger(count) || count < 0 || count > 1000) {
      throw new HttpError(400, 'invalid_request', '`count` must be an integer in 0..1000');
    }
    this.#armed = count;
    return this.#armed;
  }

  release() {
    const waiting = [...this.#waiting];
    for (const release of waiting) release();
    return waiting.length;
  }

  snapshot() {
    return { waiting: this.#waiting.size, held: this.held, released: this.released, dropped: this.dropped };
  }

  /** Holds the request if a hold is armed; true when it was dropped. */
  async intercept(req) {
    if (this.#armed === 0) return false;
    this.#armed -= 1;
    this.held += 1;
    const released = await new Promise((resolve) => {
      const release = () => {
        this.#waiting.delete(release);
        resolve(true);
      };
      this.#waiting.add(release);
      req.socket.once('close', () => {
        this.#waiting.delete(release);
        resolve(false);
      });
    });
    if (released) this.released += 1;
    else this.dropped += 1;
    return !released;
  }
}

/** Returns a handler for /test/*; it answers `false` for other paths. */
export function testRoutes(stats, failures, holds) {
  return async function handle(req, res, url) {
    if (!url.pathname.startsWith('/test/')) return false;
    try {
      if (url.pathname === '/test/stats' && req.method === 'GET') {
        const account = url.searchParams.get('account') ?? undefined;
        sendJson(res, 200, stats.snapshot(account));
      } else if (url.pathname === '/test/issued' && req.method === 'GET') {
        sendJson(res, 200, { tokens: stats.issued });
      } else if (url.pathname === '/test/fail-next-token' && req.method === 'POST') {
        const pending = failures.arm(await readBody(req));
        sendJson(res, 200, { pending });
      } else if (url.pathname === '/test/hold-next-token' && req.method === 'POST') {
        sendJson(res, 200, { armed: holds.arm(await readBody(req)) });
      } else if (url.pathname === '/test/release-held' && req.method === 'POST') {
        sendJson(res, 200, { released: holds.release() });
      } else if (url.pathname === '/test/held' && req.method === 'GET') {
        sendJson(res, 200, holds.snapshot());
      } else {
        throw new HttpError(404, 'invalid_request', `no test route \`${req.method} ${url.pathname}\``);
      }
    } catch (err) {
      sendError(res, err);
    }
    return true;
  };
}
