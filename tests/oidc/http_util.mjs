// The few HTTP helpers the fixture's own routes (/interaction/*, /test/*)
// share. oidc-provider's routes never pass through here: it reads its own
// request bodies, and a body read here first would be gone for it.

/** A client error with the status and OAuth-style error code to answer with. */
export class HttpError extends Error {
  constructor(status, error, description) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

const MAX_BODY = 64 * 1024;

/**
 * Reads a JSON or form-encoded body into a plain object; an empty body is
 * `{}`. Both encodings are accepted so that a test can use whichever its HTTP
 * client makes easiest.
 */
export async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, 'invalid_request', 'body too large');
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  const type = (req.headers['content-type'] ?? '').split(';')[0].trim();
  if (type === 'application/x-www-form-urlencoded') {
    return Object.fromEntries(new URLSearchParams(text));
  }
  let parsed;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'invalid_request', 'body is neither JSON nor form-encoded');
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new HttpError(400, 'invalid_request', 'body must be a JSON object');
  }
  return parsed;
}

export function sendJson(res, status, body, headers = {}) {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(text);
}

/** Answers an error as `{"error","error_description"}`, the shape OAuth uses. */
export function sendError(res, err) {
  // oidc-provider's own errors carry `status` and `error` too (e.g.
  // SessionNotFound from interactionDetails), so they answer the same way.
  const status = Number.isInteger(err?.status) && err.status >= 400 ? err.status : 500;
  const error = typeof err?.error === 'string' ? err.error : 'server_error';
  const description = err?.error_description ?? err?.message ?? 'internal error';
  if (status >= 500) console.error('oidc fixture: internal error:', err);
  sendJson(res, status, { error, error_description: description });
}
