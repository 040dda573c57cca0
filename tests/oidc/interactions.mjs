// Login and consent without a browser. oidc-provider leaves the end-user
// interaction to the host: it redirects the user agent to /interaction/<uid>
// with a cookie naming that interaction, and expects a redirect back to
// /auth/<uid> once the host has stored a result. These routes let an HTTP
// client do that with a cookie jar and a few requests:
//
//   GET  /interaction/:uid            the prompt, as JSON
//   POST /interaction/:uid/login      {"login":"alice"}   then consent
//   POST /interaction/:uid/confirm    {}                  grant what was asked
//   POST /interaction/:uid/complete   {"login":"alice"}   both in one step
//   POST /interaction/:uid/abort      {"error"?, "error_description"?}
//
// Every POST answers 303 with `Location` (the resume URL at /auth/<uid>) and
// the same URL as `{"redirect_to": …}`, so a client may follow or read it.

import { HttpError, readBody, sendError, sendJson } from './http_util.mjs';

const ROUTE = /^\/interaction\/([^/]+)(?:\/(login|confirm|complete|abort))?$/;

/**
 * Returns a handler for the interaction routes; it answers `false` for a path
 * that is not one of them. `autoLogin`, when set, makes `GET` finish the
 * interaction at once (see `OIDC_AUTO_LOGIN` in the README).
 */
export function interactionRoutes(provider, { autoLogin }) {
  async function details(req, res, uid) {
    // interactionDetails finds the interaction by its cookie, not by the
    // path: a client that sent another flow's cookie would act on that flow.
    const interaction = await provider.interactionDetails(req, res);
    if (interaction.uid !== uid) {
      throw new HttpError(400, 'invalid_request', `the interaction cookie names \`${interaction.uid}\`, not \`${uid}\``);
    }
    return interaction;
  }

  async function finish(req, res, result, merge) {
    const url = await provider.interactionResult(req, res, result, { mergeWithLastSubmission: merge });
    sendJson(res, 303, { redirect_to: url }, { location: url });
  }

  function loginName(body) {
    const login = body.login;
    if (typeof login !== 'string' || login.trim() === '' || login.length > 200) {
      throw new HttpError(400, 'invalid_request', '`login` must be a non-empty string');
    }
    return login;
  }

  /** Grants the client everything the authorization request asked for. */
  async function grantAll(interaction, accountId) {
    const { prompt, params } = interaction;
    const grant = interaction.grantId
      ? await provider.Grant.find(interaction.grantId)
      : new provider.Grant({ accountId, clientId: params.client_id });
    if (!grant) throw new HttpError(400, 'invalid_request', 'the existing grant has expired');
    const { details } = prompt;
    if (prompt.name === 'consent') {
      if (details.missingOIDCScope) grant.addOIDCScope(details.missingOIDCScope.join(' '));
      if (details.missingOIDCClaims) grant.addOIDCClaims(details.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(details.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    } else if (params.scope) {
      // Before login the consent prompt has not been evaluated yet, so its
      // missing scopes are unknown: grant all that were requested.
      grant.addOIDCScope(params.scope);
    }
    return grant.save();
  }

  async function complete(req, res, interaction, login) {
    const result = {};
    let accountId = interaction.session?.accountId;
    if (interaction.prompt.name === 'login') {
      accountId = login;
      result.login = { accountId };
    }
    if (!accountId) throw new HttpError(400, 'invalid_request', 'no account: give `login`');
    result.consent = { grantId: await grantAll(interaction, accountId) };
    await finish(req, res, result, false);
  }

  function describe(interaction) {
    const { uid, prompt, params, session } = interaction;
    return {
      uid,
      prompt: prompt.name,
      reasons: prompt.reasons,
      missing_scopes: prompt.details?.missingOIDCScope ?? [],
      account: session?.accountId ?? null,
      params,
    };
  }

  return async function handle(req, res, pathname) {
    const match = ROUTE.exec(pathname);
    if (!match) return false;
    const [, uid, action] = match;
    try {
      if (!action) {
        if (req.method !== 'GET') throw new HttpError(405, 'invalid_request', 'use GET');
        const interaction = await details(req, res, uid);
        if (autoLogin) {
          const login = interaction.params.login_hint || autoLogin;
          await complete(req, res, interaction, login);
        } else {
          sendJson(res, 200, describe(interaction));
        }
        return true;
      }
      if (req.method !== 'POST') throw new HttpError(405, 'invalid_request', 'use POST');
      const body = await readBody(req);
      const interaction = await details(req, res, uid);
      const { name } = interaction.prompt;
      switch (action) {
        case 'login':
          if (name !== 'login') throw new HttpError(400, 'invalid_request', `the interaction asks for \`${name}\`, not login`);
          await finish(req, res, { login: { accountId: loginName(body) } }, false);
          break;
        case 'confirm': {
          if (name !== 'consent') throw new HttpError(400, 'invalid_request', `the interaction asks for \`${name}\`, not consent`);
          const grantId = await grantAll(interaction, interaction.session.accountId);
          await finish(req, res, { consent: { grantId } }, true);
          break;
        }
        case 'complete':
          await complete(req, res, interaction, name === 'login' ? loginName(body) : undefined);
          break;
        case 'abort':
          await finish(req, res, {
            error: typeof body.error === 'string' ? body.error : 'access_denied',
            error_description: typeof body.error_description === 'string'
              ? body.error_description
              : 'the end-user refused',
          }, false);
          break;
        default:
          throw new HttpError(404, 'invalid_request', 'no such interaction action');
      }
    } catch (err) {
      sendError(res, err);
    }
    return true;
  };
}
