// A real OpenID-certified authorization server (oidc-provider) on loopback,
// configured as warrant's token vault will meet one: a confidential client,
// the authorization-code flow with PKCE S256 required, refresh tokens rotated
// on every use with reuse detection, revocation and introspection, short
// access-token lifetimes, and test-only routes to complete the login without
// a browser, count what the provider did and fail the token endpoint on cue.
//
//   node tests/oidc/provider.mjs      # prints one JSON line once listening:
//   {"ready":true,"issuer":"http://127.0.0.1:PORT",...}
//
// Every knob is an environment variable; README.md lists them.

import crypto from 'node:crypto';
import http from 'node:http';
import { promisify } from 'node:util';

import { sendError, sendJson } from './http_util.mjs';
import { interactionRoutes } from './interactions.mjs';
import { MemoryAdapter } from './memory_adapter.mjs';
import { countEvents, Stats, TokenFailures, TokenHolds, testRoutes } from './test_control.mjs';

// stdout carries exactly one line, the ready line, which a harness parses;
// oidc-provider prints its notices with console.info, so those go to stderr.
console.info = console.error;
console.log = console.error;

const HOST = '127.0.0.1';
const CALLBACK_PATH = '/v1/grants/callback';

function fail(message) {
  console.error(`oidc fixture: ${message}`);
  process.exit(2);
}

function intEnv(name, fallback, min, max = Number.MAX_SAFE_INTEGER) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) < min || Number(raw) > max) {
    fail(`${name} must be an integer in ${min}..${max}, got \`${raw}\``);
  }
  return Number(raw);
}

function listEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  return raw.split(/[\s,]+/).filter(Boolean);
}

function boolEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === '1' || raw === 'true') return true;
  if (raw === '0' || raw === 'false') return false;
  return fail(`${name} must be 0 or 1, got \`${raw}\``);
}

const settings = {
  port: intEnv('PORT', 0, 0, 65_535),
  clientId: process.env.OIDC_CLIENT_ID || 'warrant',
  clientSecret: process.env.OIDC_CLIENT_SECRET || 'warrant-test-secret',
  authMethod: process.env.OIDC_CLIENT_AUTH_METHOD || 'client_secret_basic',
  redirectUris: listEnv('OIDC_REDIRECT_URIS', [`http://${HOST}${CALLBACK_PATH}`]),
  anyLoopbackPort: boolEnv('OIDC_REDIRECT_ANY_PORT', true),
  accessTtl: intEnv('OIDC_ACCESS_TTL', 60, 1),
  // Access tokens issued by a refresh (default: as OIDC_ACCESS_TTL), so a
  // test can start with a token about to expire and get a lasting one.
  refreshedAccessTtl: intEnv('OIDC_REFRESHED_ACCESS_TTL', intEnv('OIDC_ACCESS_TTL', 60, 1), 1),
  refreshTtl: intEnv('OIDC_REFRESH_TTL', 86_400, 1),
  codeTtl: intEnv('OIDC_CODE_TTL', 60, 1),
  requireOfflineAccess: boolEnv('OIDC_REQUIRE_OFFLINE_ACCESS', false),
  extraScopes: listEnv('OIDC_EXTRA_SCOPES', []),
  autoLogin: process.env.OIDC_AUTO_LOGIN || undefined,
  exitWithStdin: boolEnv('OIDC_EXIT_WITH_STDIN', false),
};
for (const uri of settings.redirectUris) {
  if (!URL.parse(uri)) fail(`OIDC_REDIRECT_URIS: \`${uri}\` is not a URL`);
}
if (!['client_secret_basic', 'client_secret_post'].includes(settings.authMethod)) {
  fail(`OIDC_CLIENT_AUTH_METHOD must be client_secret_basic or client_secret_post, got \`${settings.authMethod}\``);
}
let failures;
try {
  failures = TokenFailures.fromEnv(process.env.OIDC_FAIL_NEXT_TOKEN);
} catch (err) {
  fail(err.message);
}

/**
 * Whether `uri` may be used as a redirect URI: registered exactly, or (with
 * OIDC_REDIRECT_ANY_PORT) a registered http loopback URI on another port.
 * That is RFC 8252 §7.3's rule, which oidc-provider applies only to native
 * clients; it is applied here to the web client because warrant's callback
 * port is chosen after the provider's issuer must already be known.
 */
function redirectUriAllowed(uri) {
  const url = URL.parse(uri);
  if (!url) return false;
  const anyPort = settings.anyLoopbackPort
    && url.protocol === 'http:'
    && ['127.0.0.1', '[::1]', 'localhost'].includes(url.hostname);
  return settings.redirectUris.some((registered) => {
    const allowed = new URL(registered);
    return allowed.href === url.href || (anyPort && withoutPort(allowed) === withoutPort(url));
  });
}

function withoutPort(url) {
  const copy = new URL(url.href);
  copy.port = '';
  return copy.href;
}

// A fresh ID-token signing key per start: nothing needs old ID tokens to
// verify after a restart, which forgets every token anyway. RSA generation
// and loading oidc-provider each take a few hundred milliseconds; the key is
// made on libuv's thread pool while the module loads, so a start costs one.
const keyPair = promisify(crypto.generateKeyPair)('rsa', { modulusLength: 2048 });
const { default: Provider } = await import('oidc-provider');
const { privateKey } = await keyPair;
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };

function configuration() {
  return {
    adapter: MemoryAdapter,
    clients: [{
      client_id: settings.clientId,
      client_secret: settings.clientSecret,
      token_endpoint_auth_method: settings.authMethod,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: settings.redirectUris,
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    async findAccount(ctx, id) {
      // Every login name is an account; its subject is the name itself.
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: `${id}@example.test`, email_verified: true, name: id };
        },
      };
    },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    scopes: ['openid', 'offline_access', 'email', 'profile', ...settings.extraScopes],
    // The code flow only: the discovery document then advertises no more.
    responseTypes: ['code'],
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: {
        enabled: true,
        // The library's default, stated so it prints no notice: any
        // authenticated confidential client may introspect any token.
        async allowedPolicy(ctx, client, token) {
          return client.clientAuthMethod !== 'none' || token.clientId === ctx.oidc.client.clientId;
        },
      },
    },
    interactions: {
      url(ctx, interaction) {
        return `/interaction/${interaction.uid}`;
      },
    },
    pkce: {
      methods: ['S256'],
      required: () => true,
    },
    async issueRefreshToken(ctx, client, code) {
      if (!client.grantTypeAllowed('refresh_token')) return false;
      return !settings.requireOfflineAccess || code.scopes.has('offline_access');
    },
    // The vault keeps grants long after the user's session at the provider
    // ends; tokens tied to that session would die with it.
    async expiresWithSession() {
      return false;
    },
    // Every use rotates: the used token is marked consumed, and presenting it
    // again fails with invalid_grant and revokes the whole grant (all its
    // refresh and access tokens), as revokeGrantPolicy's default says.
    rotateRefreshToken: true,
    ttl: {
      AccessToken: (ctx) =>
        ctx?.oidc?.params?.grant_type === 'refresh_token' ? settings.refreshedAccessTtl : settings.accessTtl,
      AuthorizationCode: settings.codeTtl,
      RefreshToken: settings.refreshTtl,
      // The library's defaults, stated so that it prints no notice.
      IdToken: 3600,
      Interaction: 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
    },
    // Error pages as JSON: a test reading one wants the fields, not HTML.
    async renderError(ctx, out) {
      ctx.type = 'json';
      ctx.body = out;
    },
  };
}

const server = http.createServer();
let handle = (req, res) => sendJson(res, 503, { error: 'temporarily_unavailable', error_description: 'starting' });
server.on('request', (req, res) => {
  // An exception escaping a request must not end the process mid-test.
  Promise.resolve(handle(req, res)).catch((err) => {
    if (res.headersSent) res.destroy();
    else sendError(res, err);
  });
});
server.on('error', (err) => fail(`cannot listen on ${HOST}:${settings.port}: ${err.message}`));

// The issuer names the port, and port 0 is only known once listening, so
// the provider is built after listen; until then requests answer 503.
server.listen(settings.port, HOST, () => {
  const { port } = server.address();
  const issuer = `http://${HOST}:${port}`;
  const provider = new Provider(issuer, configuration());
  if (typeof provider.Client.prototype.redirectUriAllowed !== 'function') {
    fail('this oidc-provider has no Client#redirectUriAllowed to extend; check the version');
  }
  provider.Client.prototype.redirectUriAllowed = redirectUriAllowed;
  provider.on('server_error', (ctx, err) => console.error('oidc-provider server_error:', err));

  const stats = new Stats();
  countEvents(provider, stats);
  const interactions = interactionRoutes(provider, { autoLogin: settings.autoLogin });
  const holds = new TokenHolds();
  const tests = testRoutes(stats, failures, holds);
  const oidc = provider.callback();

  handle = async (req, res) => {
    const url = new URL(req.url, issuer);
    if (await tests(req, res, url)) return;
    if (await interactions(req, res, url.pathname)) return;
    if (req.method === 'POST' && url.pathname === '/token' && await holds.intercept(req)) return;
    if (req.method === 'POST' && url.pathname === '/token' && await failures.intercept(req, res)) {
      stats.add('injected_failures');
      return;
    }
    oidc(req, res);
  };

  process.stdout.write(`${JSON.stringify({
    ready: true,
    issuer,
    port,
    client_id: settings.clientId,
    redirect_uris: settings.redirectUris,
  })}\n`);
});

function shutdown(signal) {
  console.error(`oidc fixture: ${signal}, closing`);
  server.close(() => process.exit(0));
  // Keep-alive connections would hold close() open until they time out.
  server.closeAllConnections();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
if (settings.exitWithStdin) {
  // A parent that dies without killing us closes our stdin: leave with it.
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.resume();
}
