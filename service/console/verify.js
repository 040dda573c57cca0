// Checks made in the auditor's browser, trusting nothing the server says
// about its own honesty (docs/console.md#verifying-in-the-browser):
//
// - a record's leaf is recomputed from the record itself: SHA-256 of 0x00
//   and its canonical JSON (RFC 8785, as the server hashes it);
// - the checkpoint is a C2SP signed note, checked with Ed25519 (WebCrypto)
//   against the verifier key the auditor pinned, and, when the auditor
//   pinned witness keys, cosigned by at least a quorum of those witnesses;
// - the inclusion proof must lead from that leaf to the signed root, and a
//   consistency proof from the last checkpoint this browser verified to the
//   new one (RFC 9162 §2.1.3.2 and §2.1.4.2).
//
// Pure functions over bytes and text; console.js does the fetching.

const encoder = new TextEncoder();

/** RFC 8785 JSON canonicalization: ECMAScript serialization, keys sorted by UTF-16 code units. */
export function jcs(value) {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('a number that JSON cannot hold');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(jcs).join(',')}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${jcs(value[k])}`).join(',')}}`;
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error(`not hex: ${text.slice(0, 16)}…`);
  return new Uint8Array(text.match(/../g)?.map((h) => parseInt(h, 16)) ?? []);
}

export function fromBase64(text) {
  const raw = atob(text);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

function equal(a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

const leafHash = (entry) => sha256(concat(new Uint8Array([0]), entry));
const nodeHash = (left, right) => sha256(concat(new Uint8Array([1]), left, right));

/** The RFC 9162 leaf of a record as the auditor API serves it. */
export async function recordLeaf(record) {
  return leafHash(encoder.encode(jcs(record)));
}

/**
 * RFC 9162 §2.1.3.2: whether `proof` leads from `leaf` (at `index`) to
 * `root` in a tree of `size` leaves. Sizes stay far below 2^53, so plain
 * numbers with division serve (bitwise operators would cut them to 32 bits).
 */
export async function verifyInclusion(index, size, leaf, proof, root) {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(r, root);
}

/** RFC 9162 §2.1.4.2: whether `proof` shows the tree of `size2` extends the one of `size1`. */
export async function verifyConsistency(size1, size2, root1, root2, proof) {
  if (size1 > size2) return false;
  if (size1 === size2) return proof.length === 0 && equal(root1, root2);
  if (size1 === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  let path = proof;
  // When size1 is a power of two, its root is the first node of the path.
  if (Number.isInteger(Math.log2(size1))) path = [root1, ...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = await nodeHash(c, fr);
      sr = await nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn = Math.floor(fn / 2);
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = await nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && equal(fr, root1) && equal(sr, root2);
}

/** Signature types of C2SP note keys: a log's Ed25519 key, a witness's cosignature key. */
export const ED25519 = 0x01;
export const COSIGNATURE_V1 = 0x04;

/**
 * A C2SP verifier key, `<name>+<8 hex digits>+<base64 of type ‖ Ed25519 key>`,
 * of signature type `type` (a log's key by default); throws naming what is wrong.
 */
export async function parseVerifierKey(text, type = ED25519) {
  // The key's base64 may hold `+` too: the name ends at the first one, the
  // hash is the next 8 characters.
  const match = /^([^+\s]+)\+([^+]*)\+(\S+)$/.exec(text.trim());
  if (!match) throw new Error('a verifier key is `name+hash+key`');
  const [, name, hash, key] = match;
  if (!name || /[\s+]/.test(name)) throw new Error('the key name is empty or has spaces');
  if (!/^[0-9a-f]{8}$/.test(hash)) throw new Error('the key hash is not 8 hex digits');
  let raw;
  try {
    raw = fromBase64(key);
  } catch {
    throw new Error('the key is not base64');
  }
  if (raw.length !== 33 || raw[0] !== type) {
    throw new Error(type === ED25519
      ? 'the key is not an Ed25519 note key (0x01 and 32 bytes)'
      : 'the key is not a witness cosignature key (0x04 and 32 bytes)');
  }
  const id = (await sha256(concat(encoder.encode(`${name}\n`), raw))).slice(0, 4);
  if (hex(id) !== hash) throw new Error('the key hash does not match the name and key');
  const publicKey = await crypto.subtle.importKey('raw', raw.slice(1), { name: 'Ed25519' }, false, ['verify']);
  return { name, id, publicKey, text: text.trim() };
}

/** A note's text (through the blank line) and its signature lines, or an Error. */
function splitNote(note) {
  const split = note.indexOf('\n\n');
  if (split < 0 || !note.endsWith('\n')) throw new Error('the checkpoint is not a signed note');
  const signatures = [];
  for (const line of note.slice(split + 2).split('\n')) {
    const match = /^\u2014 (\S+) (\S+)$/.exec(line);
    if (match) signatures.push({ name: match[1], bytes: fromBase64(match[2]) });
  }
  return { text: note.slice(0, split + 1), signatures };
}

/**
 * Opens a signed note with `key`: the checkpoint's origin, size and root,
 * or an Error saying why not.
 */
export async function openCheckpoint(note, key) {
  const { text, signatures } = splitNote(note);
  const lines = text.split('\n');
  const [origin, size, root] = lines;
  if (!/^(0|[1-9][0-9]*)$/.test(size ?? '')) throw new Error('the checkpoint has no tree size');
  let signed = false;
  for (const { name, bytes } of signatures) {
    if (name !== key.name || bytes.length !== 68 || !equal(bytes.slice(0, 4), key.id)) continue;
    if (await crypto.subtle.verify({ name: 'Ed25519' }, key.publicKey, bytes.slice(4), encoder.encode(text))) {
      signed = true;
      break;
    }
    throw new Error(`the signature by ${key.name} does not verify: the checkpoint was altered or signed by another key`);
  }
  if (!signed) throw new Error(`the checkpoint carries no signature by the pinned key ${key.name}`);
  return { origin, size: Number(size), root: fromBase64(root) };
}

/**
 * The witnesses among `witnesses` (parsed with type COSIGNATURE_V1) whose
 * cosignature (c2sp.org/tlog-cosignature: 8-byte big-endian time, then an
 * Ed25519 signature over `cosignature/v1`, `time <t>` and the note text) is
 * on `note`, each once, with the time it cosigned. A pinned witness's line
 * that does not verify is an Error: someone forged or damaged it.
 */
export async function cosignedBy(note, witnesses) {
  const { text, signatures } = splitNote(note);
  const found = new Map();
  for (const { name, bytes } of signatures) {
    const key = witnesses.find((w) => w.name === name && bytes.length === 76 && equal(bytes.slice(0, 4), w.id));
    if (!key) continue;
    // BigInt: the time is a u64, its decimal text part of the message.
    let time = 0n;
    for (const b of bytes.slice(4, 12)) time = time * 256n + BigInt(b);
    const message = encoder.encode(`cosignature/v1\ntime ${time}\n${text}`);
    if (!(await crypto.subtle.verify({ name: 'Ed25519' }, key.publicKey, bytes.slice(12), message))) {
      throw new Error(`the cosignature by witness ${name} does not verify: the checkpoint was altered or the line forged`);
    }
    const seen = found.get(key.text)?.time ?? 0n;
    found.set(key.text, { name, time: time > seen ? time : seen });
  }
  return [...found.values()];
}
