// In-memory storage for oidc-provider's models (clients, grants, codes,
// tokens, sessions, interactions). Nothing survives a restart: a restarted
// provider has forgotten every token it issued.
//
// Why not the library's own memory adapter: it is one LRU of 1,000 entries
// shared by all models, so a provider that serves a whole test binary can
// evict a live refresh token or grant, and a test would see `invalid_grant`
// for a token that is valid. This one keeps each entry until it expires.

const entries = new Map(); // `${model}:${id}` -> { payload, expiresAt }
const byGrant = new Map(); // grantId -> Set of entry keys issued under it
const sessionByUid = new Map(); // Session uid -> Session id
const deviceByUserCode = new Map(); // user code -> DeviceCode id

// The models whose entries belong to a grant and go when it is revoked.
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
]);

function live(key) {
  const entry = entries.get(key);
  if (!entry) return undefined;
  if (entry.expiresAt !== undefined && entry.expiresAt <= Date.now()) {
    entries.delete(key);
    return undefined;
  }
  return entry;
}

export class MemoryAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    // A copy, as a database would keep: later changes to the caller's object
    // must go through upsert or consume to count.
    entries.set(key, {
      payload: structuredClone(payload),
      expiresAt: expiresIn ? Date.now() + expiresIn * 1000 : undefined,
    });
    if (GRANTABLE.has(this.model) && payload.grantId) {
      let keys = byGrant.get(payload.grantId);
      if (!keys) byGrant.set(payload.grantId, (keys = new Set()));
      keys.add(key);
    }
    if (this.model === 'Session' && payload.uid) sessionByUid.set(payload.uid, id);
    if (payload.userCode) deviceByUserCode.set(payload.userCode, id);
  }

  async find(id) {
    const entry = live(this.key(id));
    return entry ? structuredClone(entry.payload) : undefined;
  }

  async findByUid(uid) {
    const id = sessionByUid.get(uid);
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = deviceByUserCode.get(userCode);
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    // Kept until it expires, marked: a consumed refresh token presented again
    // is how oidc-provider detects reuse, so it must still be found.
    const entry = live(this.key(id));
    if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
  }

  async destroy(id) {
    entries.delete(this.key(id));
  }

  async revokeByGrantId(grantId) {
    // oidc-provider calls this once per model, so only this model's entries go.
    const keys = byGrant.get(grantId);
    if (!keys) return;
    const prefix = `${this.model}:`;
    for (const key of keys) {
      if (key.startsWith(prefix)) {
        entries.delete(key);
        keys.delete(key);
      }
    }
    if (keys.size === 0) byGrant.delete(grantId);
  }
}
