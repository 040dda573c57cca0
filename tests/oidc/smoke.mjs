// Starts provider.mjs and walks the whole OAuth dance over HTTP, as warrant's
// token vault will: authorization request with PKCE and state, login and
// consent completed by requests, the code read from the redirect's Location,
// code exchange with client_secret_basic, introspection, rotation, reuse
// detection, transient token-endpoint failures, revocation, and the
// provider's own counts of all that. Exits 0 when all holds, 1 otherwise.
//
//   node tests/oidc/smoke.mjs

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const CLIENT_ID = 'warrant-smoke';
const CLIENT_SECRET = 'smoke-secret';
const ACCESS_TTL = 30;
// Not the registered URI's port (it has none): the fixture accepts any
// loopback port for a registered loopback callback, as warrant needs.
const REDIRECT_URI = 'http://127.0.0.1:9/v1/grants/callback';
const DEADLINE_MS = 30_000;

const started = Date.now();
let checks = 0;
function check(condition, message) {
  assert.ok(condition, message);
  checks += 1;
}

function step(message) {
  process.stdout.write(`  ${message}\n`);
}

/** Starts the provider and resolves with it and its issuer. */
async function startProvider() {
  const child = spawn(process.execPath, [fileURLToPath(new URL('./provider.mjs', import.meta.url))], {
    env: {
      ...process.env,
      PORT: '0',
      OIDC_CLIENT_ID: CLIENT_ID,
      OIDC_CLIENT_SECRET: CLIENT_SECRET,
      OIDC_ACCESS_TTL: String(ACCESS_TTL),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines = createInterface({ input: child.stdout });
  const exited = once(child, 'exit').then(([code]) => {
    throw new Error(`provider.mjs exited with ${code} before it was ready`);
  });
  const [line] = await Promise.race([once(lines, 'line'), exited]);
  const ready = JSON.parse(line);
  assert.equal(ready.ready, true, `unexpected first line: ${line}`);
  return { child, issuer: ready.issuer };
}

/** A cookie jar as small as the flow needs: names are unique per step. */
class Browser {
  #cookies = new Map();

  async get(url) {
    const res = await fetch(url, { redirect: 'manual', headers: this.#header() });
    this.#keep(res);
    return res;
  }

  async post(url, body) {
    const res = await fetch(url, {
      method: 'POST',
      redirect: 'manual',
      headers: { ...this.#header(), 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    this.#keep(res);
    return res;
  }

  #header() {
    const cookie = [...this.#cookies].map(([name, value]) => `${name}=${value}`).join('; ');
    return cookie ? { cookie } : {};
  }

  #keep(res) {
    for (const set of res.headers.getSetCookie()) {
      const [pair] = set.split(';');
      const at = pair.indexOf('=');
      this.#cookies.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
    }
  }
}

function pkce() {
  const verifier = crypto.randomBytes(32).toString('base64url');
  const challenge = crypto.createHash('sha256').update(verifier).digest('base64url');
  return { verifier, challenge };
}

function authorizationUrl(issuer, { challenge, state, scope = 'openid email' }) {
  const url = new URL('/auth', issuer);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    scope,
    state,
    ...(challenge ? { code_challenge: challenge, code_challenge_method: 'S256' } : {}),
  });
  return url;
}

/**
 * Follows redirects by hand until one leaves the provider for the redirect
 * URI, answering each interaction with `answer`; returns that callback URL.
 */
async function authorize(browser, issuer, url, answer) {
  let next = url;
  for (let hop = 0; hop < 10; hop += 1) {
    const res = await browser.get(next);
    if (res.status === 200 && next.pathname.startsWith('/interaction/')) {
      const prompt = await res.json();
      const done = await answer(prompt);
      check(done.status === 303, `interaction answered ${done.status}: ${await done.text()}`);
      next = new URL(done.headers.get('location'), issuer);
      continue;
    }
    check(res.status === 303 || res.status === 302, `GET ${next} answered ${res.status}: ${await res.text()}`);
    next = new URL(res.headers.get('location'), issuer);
    if (next.href.startsWith(REDIRECT_URI)) return next;
  }
  throw new Error('too many redirects');
}

function basicAuth() {
  const enc = (s) => encodeURIComponent(s);
  return `Basic ${Buffer.from(`${enc(CLIENT_ID)}:${enc(CLIENT_SECRET)}`).toString('base64')}`;
}

/** POSTs a form with client_secret_basic; resolves with status and JSON body. */
async function clientPost(issuer, path, form, signal) {
  const res = await fetch(new URL(path, issuer), {
    method: 'POST',
    headers: { authorization: basicAuth(), 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
    signal,
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? JSON.parse(text) : null };
}

const token = (issuer, form, signal) => clientPost(issuer, '/token', form, signal);
const introspect = async (issuer, value) => (await clientPost(issuer, '/token/introspection', { token: value })).body;

async function exchange(issuer, callback, verifier) {
  return token(issuer, {
    grant_type: 'authorization_code',
    code: callback.searchParams.get('code'),
    redirect_uri: REDIRECT_URI,
    code_verifier: verifier,
  });
}

async function control(issuer, path, body) {
  const res = await fetch(new URL(path, issuer), {
    method: body === undefined ? 'GET' : 'POST',
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  check(res.status === 200, `${path}: ${res.status}`);
  return res.json();
}

/** Polls `condition` every 10 ms for up to 5 s. */
async function until(condition, what) {
  for (let i = 0; i < 500; i += 1) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  check(false, `never: ${what}`);
}

async function stats(issuer, account) {
  const url = new URL('/test/stats', issuer);
  if (account) url.searchParams.set('account', account);
  return (await fetch(url)).json();
}

async function run(issuer) {
  // --- alice: login, then consent, in two interactions.
  const alice = new Browser();
  const a = pkce();
  const state = crypto.randomBytes(16).toString('base64url');
  const prompts = [];
  const callback = await authorize(alice, issuer, authorizationUrl(issuer, { challenge: a.challenge, state }), (prompt) => {
    prompts.push(prompt.prompt);
    if (prompt.prompt === 'login') return alice.post(new URL(`/interaction/${prompt.uid}/login`, issuer), { login: 'alice' });
    check(prompt.missing_scopes.includes('email'), `consent should list email: ${JSON.stringify(prompt)}`);
    return alice.post(new URL(`/interaction/${prompt.uid}/confirm`, issuer), {});
  });
  check(prompts.join(',') === 'login,consent', `prompts were ${prompts}`);
  check(callback.searchParams.get('state') === state, 'state comes back unchanged');
  check(callback.searchParams.get('iss') === issuer, 'iss names the issuer (RFC 9207)');
  step(`authorized alice after ${prompts.join(' + ')}; code at ${callback.origin}${callback.pathname}`);

  const issued = await exchange(issuer, callback, a.verifier);
  check(issued.status === 200, `code exchange: ${JSON.stringify(issued.body)}`);
  const first = issued.body;
  check(first.token_type === 'Bearer' && first.access_token && first.refresh_token && first.id_token, 'access, refresh and ID token');
  check(first.expires_in === ACCESS_TTL, `expires_in is OIDC_ACCESS_TTL: ${first.expires_in}`);
  check(first.scope === 'openid email', `scope: ${first.scope}`);
  step('exchanged the code with client_secret_basic');

  let info = await introspect(issuer, first.access_token);
  check(info.active === true && info.sub === 'alice' && info.client_id === CLIENT_ID, `introspection: ${JSON.stringify(info)}`);

  const refreshed = await token(issuer, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
  check(refreshed.status === 200, `refresh: ${JSON.stringify(refreshed.body)}`);
  const second = refreshed.body;
  check(second.refresh_token && second.refresh_token !== first.refresh_token, 'the refresh token rotated');
  check(second.access_token !== first.access_token, 'a new access token');
  step('refreshed: new access token, rotated refresh token');

  const reuse = await token(issuer, { grant_type: 'refresh_token', refresh_token: first.refresh_token });
  check(reuse.status === 400 && reuse.body.error === 'invalid_grant', `reusing the old refresh token: ${JSON.stringify(reuse.body)}`);
  info = await introspect(issuer, second.refresh_token);
  check(info.active === false, 'reuse revoked the rotated refresh token too');
  info = await introspect(issuer, second.access_token);
  check(info.active === false, 'and the access tokens of the grant');
  const afterReuse = await token(issuer, { grant_type: 'refresh_token', refresh_token: second.refresh_token });
  check(afterReuse.status === 400 && afterReuse.body.error === 'invalid_grant', 'the rotated token no longer refreshes');
  step(`reuse of the old refresh token: ${reuse.body.error} (${reuse.body.error_description}); the whole grant is revoked`);

  // --- PKCE is required, and checked.
  const noPkce = await alice.get(authorizationUrl(issuer, { state: 'no-pkce' }));
  const noPkceTo = new URL(noPkce.headers.get('location'), issuer);
  check(noPkceTo.searchParams.get('error') === 'invalid_request' && noPkceTo.searchParams.get('state') === 'no-pkce',
    `an authorization request without code_challenge: ${noPkceTo}`);
  const b = pkce();
  // alice is still logged in, but reuse detection revoked her grant: the
  // provider asks for consent again, and only that.
  const again = [];
  const direct = await authorize(alice, issuer, authorizationUrl(issuer, { challenge: b.challenge, state: 's2' }), (prompt) => {
    again.push(prompt.prompt);
    return alice.post(new URL(`/interaction/${prompt.uid}/confirm`, issuer), {});
  });
  check(again.join(',') === 'consent', `after the grant's revocation, prompts were ${again}`);
  const wrongVerifier = await exchange(issuer, direct, pkce().verifier);
  check(wrongVerifier.status === 400 && wrongVerifier.body.error === 'invalid_grant', 'a wrong code_verifier is invalid_grant');
  const rightVerifier = await exchange(issuer, direct, b.verifier);
  check(rightVerifier.status === 200, 'a wrong verifier does not use up the code');
  const replayedCode = await exchange(issuer, direct, b.verifier);
  check(replayedCode.status === 400 && replayedCode.body.error === 'invalid_grant', 'a code works once');
  info = await introspect(issuer, rightVerifier.body.access_token);
  check(info.active === false, 'a replayed code revokes the tokens issued for it');
  step('PKCE: no code_challenge is refused at /auth, a wrong verifier at /token; a replayed code revokes its grant');

  // --- bob: login and consent in one step; failures; revocation.
  const bob = new Browser();
  const c = pkce();
  const bobCallback = await authorize(bob, issuer, authorizationUrl(issuer, { challenge: c.challenge, state: 'bob' }), (prompt) => (
    bob.post(new URL(`/interaction/${prompt.uid}/complete`, issuer), { login: 'bob' })
  ));
  const bobTokens = (await exchange(issuer, bobCallback, c.verifier)).body;
  check(typeof bobTokens.refresh_token === 'string', 'bob has a refresh token');

  const armed = await fetch(new URL('/test/fail-next-token', issuer), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ status: 503, count: 2, retry_after: 1 }),
  });
  check((await armed.json()).pending === 2, 'two failures armed');
  for (let i = 0; i < 2; i += 1) {
    const failed = await token(issuer, { grant_type: 'refresh_token', refresh_token: bobTokens.refresh_token });
    check(failed.status === 503 && failed.body.error === 'temporarily_unavailable', `injected failure ${i + 1}: ${failed.status}`);
    check(failed.headers.get('retry-after') === '1', 'Retry-After as armed');
  }
  step('token endpoint failed twice on cue (503, Retry-After: 1)');

  // Held requests: one whose client goes away is dropped unprocessed, one
  // released goes through.
  check((await control(issuer, '/test/hold-next-token', { count: 2 })).armed === 2, 'two holds armed');
  const refresh = { grant_type: 'refresh_token', refresh_token: bobTokens.refresh_token };
  const aborter = new AbortController();
  const abandoned = token(issuer, refresh, aborter.signal).then(() => 'answered', () => 'aborted');
  await until(async () => (await control(issuer, '/test/held')).waiting === 1, 'the first request held');
  aborter.abort();
  check(await abandoned === 'aborted', 'the client went away');
  await until(async () => (await control(issuer, '/test/held')).dropped === 1, 'the abandoned request dropped');
  const releasing = token(issuer, refresh);
  await until(async () => (await control(issuer, '/test/held')).waiting === 1, 'the second request held');
  check((await control(issuer, '/test/release-held', {})).released === 1, 'one released');
  const bobRefreshed = await releasing;
  check(bobRefreshed.status === 200, 'the same refresh token still works: failures and dropped requests consumed nothing');
  const held = await control(issuer, '/test/held');
  check(held.held === 2 && held.released === 1 && held.dropped === 1 && held.waiting === 0, JSON.stringify(held));
  step('a held token request dropped when its client left, another released; then refreshed');

  const revoked = await clientPost(issuer, '/token/revocation', {
    token: bobRefreshed.body.refresh_token,
    token_type_hint: 'refresh_token',
  });
  check(revoked.status === 200, `revocation: ${revoked.status}`);
  info = await introspect(issuer, bobRefreshed.body.refresh_token);
  check(info.active === false, 'the revoked refresh token is inactive');
  info = await introspect(issuer, bobRefreshed.body.access_token);
  check(info.active === false, 'revoking the refresh token revoked the grant\'s access tokens too');
  step('revoked bob\'s refresh token: it and his access token introspect inactive');

  // --- what the provider saw.
  const all = await stats(issuer);
  const expected = {
    authorizations: 3,
    authorization_code_grants: 3,
    refresh_grants: 2,
    invalid_grant: 4, // reuse, refresh after reuse, wrong verifier, code replay
    token_errors: 4,
    injected_failures: 2,
    revocations: 1,
    grants_revoked: 3, // refresh reuse, code replay, revocation
    introspections: 6,
  };
  assert.deepEqual(all, expected, 'GET /test/stats');
  checks += 1;
  const bobStats = await stats(issuer, 'bob');
  check(bobStats.refresh_grants === 1 && bobStats.revocations === 1 && bobStats.authorizations === 1,
    `GET /test/stats?account=bob: ${JSON.stringify(bobStats)}`);
  step(`stats: ${JSON.stringify(all)}`);
}

async function main() {
  const timer = setTimeout(() => {
    console.error(`oidc smoke: FAILED: no result within ${DEADLINE_MS} ms`);
    process.exit(1);
  }, DEADLINE_MS);
  const { child, issuer } = await startProvider();
  step(`oidc-provider ready at ${issuer} (${Date.now() - started} ms)`);
  try {
    await run(issuer);
  } finally {
    child.kill('SIGTERM');
  }
  const [code] = await once(child, 'exit');
  check(code === 0, `provider.mjs exits 0 on SIGTERM, got ${code}`);
  clearTimeout(timer);
  process.stdout.write(`oidc smoke: ok, ${checks} checks in ${Date.now() - started} ms\n`);
}

main().catch((err) => {
  console.error(`oidc smoke: FAILED: ${err.message}`);
  if (!(err instanceof assert.AssertionError)) console.error(err.stack);
  process.exit(1);
});
