// The auditor's console (docs/console.md): sign in with an `audit:read`
// key, find records with the API's filters, explain one, and verify it in
// this browser against a pinned log key (verify.js).
//
// The key lives in this tab's session storage only and travels as a
// bearer header; the pinned log key and the last verified checkpoint live
// in local storage, so a later visit can check the log only grew.

import {
  COSIGNATURE_V1, cosignedBy, fromHex, hex, openCheckpoint, parseVerifierKey, recordLeaf, verifyConsistency, verifyInclusion,
} from './verify.js';

const $ = (id) => document.getElementById(id);
const KEY = 'warrant.console.api-key';
const PINNED = 'warrant.console.log-key';
const SEEN = 'warrant.console.checkpoint';
const WITNESSES = 'warrant.console.witness-keys';
const QUORUM = 'warrant.console.witness-quorum';
const PAGE = 50;
const EXPORT_MAX = 10000;

let apiKey = sessionStorage.getItem(KEY);
let filter = new URLSearchParams();
let cursor = null;
let shown = [];
let live = null;

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, { text = false, body = undefined } = {}) {
  const headers = { authorization: `Bearer ${apiKey}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
  });
  if (!response.ok) {
    let body = {};
    try {
      body = await response.json();
    } catch {
      // not JSON: the status says enough
    }
    throw new ApiError(response.status, body.error?.code ?? '', body.error?.message ?? `HTTP ${response.status}`);
  }
  return text ? response.text() : response.json();
}

// --- Sign in ---------------------------------------------------------------

async function signIn(key) {
  apiKey = key;
  try {
    await api('/v1/audit/events?limit=1');
  } catch (e) {
    apiKey = null;
    if (e.status === 401) throw new Error('This key is not valid: it is unknown, revoked or expired.');
    if (e.status === 403) throw new Error('This key is valid but lacks the audit:read scope the console needs.');
    throw new Error(`The service did not answer as expected: ${e.message}`);
  }
  sessionStorage.setItem(KEY, key);
}

function showApp(signedIn) {
  $('signin').hidden = signedIn;
  $('app').hidden = !signedIn;
  $('sign-out').hidden = !signedIn;
}

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  $('signin-error').textContent = '';
  const input = $('api-key');
  try {
    await signIn(input.value.trim());
    input.value = '';
    showApp(true);
    await Promise.all([search(), overview()]);
    $('find-title').focus();
  } catch (e) {
    $('signin-error').textContent = e.message;
  }
});

$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  apiKey = null;
  stopLive();
  showApp(false);
  $('api-key').focus();
});

// --- Find ------------------------------------------------------------------

const FILTERS = ['since', 'until', 'kind', 'actor', 'connection', 'project', 'decision', 'token'];

/**
 * The filters as query parameters. A token id in clear is turned into its
 * keyed digest first (`POST /v1/audit/digest`, in a body), so the clear id
 * is in no URL, and so in no access log.
 */
async function readFilters() {
  const params = new URLSearchParams();
  for (const name of FILTERS) {
    let value = $(`f-${name}`).value.trim();
    if (!value) continue;
    if ((name === 'since' || name === 'until') && !/[zZ]|[+-]\d\d:\d\d$/.test(value)) value = `${value}Z`;
    if (name === 'token') {
      params.set('token_digest', (await api('/v1/audit/digest', { body: { value } })).digest);
      continue;
    }
    params.set(name, value);
  }
  return params;
}

function cell(row, text, header = false) {
  const td = document.createElement(header ? 'th' : 'td');
  if (header) td.scope = 'row';
  td.textContent = text ?? '';
  row.append(td);
  return td;
}

function renderRows(records, append) {
  const body = $('events').tBodies[0];
  if (!append) body.replaceChildren();
  for (const r of records) {
    const row = document.createElement('tr');
    const first = cell(row, '', true);
    const open = document.createElement('button');
    open.type = 'button';
    open.className = 'link';
    open.textContent = String(r.seq);
    open.setAttribute('aria-label', `Open record ${r.seq}`);
    open.addEventListener('click', () => showRecord(r));
    first.append(open);
    cell(row, r.ts);
    cell(row, r.kind);
    cell(row, r.actor);
    cell(row, r.decision ?? '');
    cell(row, (r.reasons ?? []).join(', '));
    cell(row, r.connection ?? '');
    cell(row, r.project ?? '');
    body.append(row);
  }
}

async function page(params, after) {
  const query = new URLSearchParams(params);
  query.set('limit', String(PAGE));
  if (after) query.set('cursor', String(after));
  return api(`/v1/audit/events?${query}`);
}

async function search(append = false) {
  const status = $('find-status');
  try {
    if (!append) {
      filter = await readFilters();
      cursor = null;
      shown = [];
    }
    const started = performance.now();
    const answer = await page(filter, cursor);
    shown = append ? shown.concat(answer.events) : answer.events;
    renderRows(answer.events, append);
    cursor = answer.next_cursor;
    $('next-page').hidden = cursor === null;
    const ms = Math.round(performance.now() - started);
    status.textContent = `${shown.length} record(s) shown${cursor === null ? '' : ', more after'} (${ms} ms).`;
    status.dataset.ms = String(ms);
  } catch (e) {
    status.textContent = `Search failed: ${e.message}`;
  }
}

$('filters').addEventListener('submit', (event) => {
  event.preventDefault();
  search();
});
$('next-page').addEventListener('click', () => search(true));

function stopLive() {
  if (live) clearInterval(live);
  live = null;
  $('live').setAttribute('aria-pressed', 'false');
  $('live').textContent = 'Live tail: off';
}

// Live tail: new records matching the filter are appended as they arrive.
$('live').addEventListener('click', () => {
  if (live) return stopLive();
  $('live').setAttribute('aria-pressed', 'true');
  $('live').textContent = 'Live tail: on';
  live = setInterval(async () => {
    const last = shown.length ? shown[shown.length - 1].seq : 0;
    try {
      const answer = await page(filter, last);
      if (answer.events.length) {
        shown = shown.concat(answer.events);
        renderRows(answer.events, true);
        $('find-status').textContent = `${shown.length} record(s) shown, live.`;
      }
    } catch (e) {
      $('find-status').textContent = `Live tail stopped: ${e.message}`;
      stopLive();
    }
  }, 2000);
});

// --- Overview --------------------------------------------------------------

const SVG = 'http://www.w3.org/2000/svg';
const TOKEN_KINDS = ['issued', 'used', 'refreshed', 'revoked', 'expired'];

function rowOf(table, values) {
  const row = document.createElement('tr');
  values.forEach((v, i) => {
    const td = cell(row, typeof v === 'number' ? v.toLocaleString('en') : v, i === 0);
    if (typeof v === 'number') td.className = 'count';
  });
  $(table).tBodies[0].append(row);
}

function fill(table, rows, empty) {
  $(table).tBodies[0].replaceChildren();
  for (const r of rows) rowOf(table, r);
  if (!rows.length) {
    const td = cell($(table).tBodies[0].insertRow(), empty);
    td.colSpan = $(table).tHead.rows[0].cells.length;
  }
}

const BUCKET_SECONDS = { minute: 60, hour: 3600, day: 86400 };

/** Stacked bars on the window's time axis, cut into whole buckets, each bar in its slot. */
function chart(o) {
  const svg = $('o-chart');
  svg.replaceChildren();
  const bucket = BUCKET_SECONDS[o.bucket] * 1000;
  const from = Math.floor(Date.parse(o.since) / bucket) * bucket;
  const to = Math.max(Math.ceil(Date.parse(o.until) / bucket) * bucket, from + bucket);
  const slot = (600 * bucket) / (to - from);
  const top = Math.max(1, ...o.decisions.map((d) => d.allow + d.deny));
  for (const d of o.decisions) {
    const x = ((Date.parse(d.start) - from) / bucket) * slot + slot * 0.075;
    let y = 160;
    for (const [count, name] of [[d.allow, 'bar-allow'], [d.deny, 'bar-deny']]) {
      const h = (count / top) * 150;
      y -= h;
      if (!count) continue;
      const rect = document.createElementNS(SVG, 'rect');
      for (const [k, v] of Object.entries({ x, y, width: Math.max(slot * 0.85, 0.5), height: h })) rect.setAttribute(k, String(v));
      rect.setAttribute('class', name);
      svg.append(rect);
    }
  }
  $('o-axis-from').textContent = new Date(from).toISOString();
  $('o-axis-to').textContent = new Date(to).toISOString();
  $('o-axis-top').textContent = `one ${o.bucket} a bar; the tallest: ${top.toLocaleString('en')} decisions`;
}

async function overview() {
  const status = $('overview-status');
  status.textContent = 'Counting…';
  const until = new Date();
  const since = new Date(until.getTime() - Number($('o-window').value) * 1000);
  try {
    const started = performance.now();
    const o = await api(`/v1/audit/overview?${new URLSearchParams({ since: since.toISOString(), until: until.toISOString() })}`);
    const totals = $('o-totals');
    totals.replaceChildren();
    for (const [name, value] of [['records', o.records], ['decisions allowed', o.allowed], ['decisions denied', o.denied],
      ['decisions with a rule failure', o.decisions_with_rule_failures]]) {
      const div = document.createElement('div');
      term(div, name, value.toLocaleString('en'));
      totals.append(div);
    }
    chart(o);
    const busiest = o.decisions.reduce((a, d) => (a && a.allow + a.deny >= d.allow + d.deny ? a : d), null);
    $('o-chart-summary').textContent = o.decisions.length
      ? `${o.allowed.toLocaleString('en')} allowed and ${o.denied.toLocaleString('en')} denied in ${o.decisions.length} ${o.bucket}(s) with decisions, from ${o.decisions[0].start} to ${o.decisions[o.decisions.length - 1].start}; the busiest ${o.bucket} began ${busiest.start} (${busiest.allow} allowed, ${busiest.deny} denied).`
      : 'No decisions in this window.';
    fill('o-decisions', o.decisions.map((d) => [d.start, d.allow, d.deny]), 'No decisions in this window.');
    fill('o-reasons', o.deny_reasons.map((r) => [r.name, r.count]), 'No denials in this window.');
    fill('o-rules', o.rule_failures.map((f) => [f.rule, f.reason, f.count]), 'No rule failed in this window.');
    fill('o-tokens', o.token_events.map((c) => [c.connection ?? '(none)',
      ...TOKEN_KINDS.map((k) => c.kinds[`token.${k}`] ?? 0), c.total]), 'No token events in this window.');
    const ms = Math.round(performance.now() - started);
    status.textContent = `From ${o.since} to ${o.until}, by ${o.bucket}${o.rule_failures_partial ? '; rule failures counted over the oldest 10,000' : ''} (${ms} ms).`;
  } catch (e) {
    status.textContent = `The overview failed: ${e.message}`;
  }
}

$('overview-form').addEventListener('submit', (event) => {
  event.preventDefault();
  overview();
});

// --- Export ----------------------------------------------------------------

async function everything() {
  const records = [];
  let after = null;
  do {
    const answer = await page(filter, after);
    records.push(...answer.events);
    after = answer.next_cursor;
  } while (after !== null && records.length < EXPORT_MAX);
  return { records, truncated: after !== null };
}

function download(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

const CSV_COLUMNS = ['seq', 'ts', 'kind', 'actor', 'token_id', 'token_owner', 'connection', 'project', 'decision',
  'reasons', 'policy_digest', 'details', 'key_id', 'prev_mac', 'mac'];

function csvField(value) {
  let text = value === undefined ? '' : typeof value === 'object' ? JSON.stringify(value) : String(value);
  // A cell a spreadsheet would run as a formula is quoted as text.
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\n\r]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

async function exportAs(format) {
  const status = $('find-status');
  status.textContent = 'Exporting…';
  try {
    const { records, truncated } = await everything();
    if (format === 'jsonl') {
      download('warrant-audit.jsonl', 'application/x-ndjson', records.map((r) => `${JSON.stringify(r)}\n`).join(''));
    } else {
      const lines = [CSV_COLUMNS.join(',')].concat(records.map((r) => CSV_COLUMNS.map((c) => csvField(r[c])).join(',')));
      download('warrant-audit.csv', 'text/csv', `${lines.join('\r\n')}\r\n`);
    }
    status.textContent = `Exported ${records.length} record(s)${truncated ? ` (the first ${EXPORT_MAX}; narrow the filter or use warrant audit export)` : ''}.`;
  } catch (e) {
    status.textContent = `Export failed: ${e.message}`;
  }
}

$('export-jsonl').addEventListener('click', () => exportAs('jsonl'));
$('export-csv').addEventListener('click', () => exportAs('csv'));

// --- Explain ---------------------------------------------------------------

let current = null;

function term(list, name, value) {
  const dt = document.createElement('dt');
  dt.textContent = name;
  const dd = document.createElement('dd');
  dd.textContent = value;
  list.append(dt, dd);
}

function linkButton(text, onClick) {
  const li = document.createElement('li');
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'link';
  b.textContent = text;
  b.addEventListener('click', onClick);
  li.append(b);
  return li;
}

function findWith(values) {
  for (const name of FILTERS) $(`f-${name}`).value = values[name] ?? '';
  $('record').hidden = true;
  search();
  $('find-title').focus();
}

async function showRecord(record) {
  current = record;
  $('record').hidden = false;
  $('record-title').textContent = `Record ${record.seq}: ${record.kind}`;
  const fields = $('record-fields');
  fields.replaceChildren();
  for (const name of ['seq', 'ts', 'kind', 'actor', 'token_id', 'token_owner', 'connection', 'project', 'decision',
    'reasons', 'policy_digest', 'key_id', 'prev_mac', 'mac']) {
    if (record[name] === undefined) continue;
    term(fields, name, Array.isArray(record[name]) ? record[name].join(', ') : String(record[name]));
  }
  const details = $('record-details');
  details.replaceChildren();
  for (const [k, v] of Object.entries(record.details ?? {})) {
    term(details, k, typeof v === 'object' ? JSON.stringify(v) : String(v));
  }

  const redaction = $('record-redaction');
  redaction.replaceChildren();
  const said = (text) => {
    const li = document.createElement('li');
    li.textContent = text;
    redaction.append(li);
  };
  if (record.token_id) said('token_id is a keyed digest (HMAC-SHA256 under the audit key) of the token id: the id itself is never stored. Search by the clear id to find its records.');
  for (const [k, v] of Object.entries(record.details ?? {})) {
    if (typeof v === 'string' && v.startsWith('hmac-sha256:')) said(`details.${k} is a keyed digest: the value was secret-shaped or an identifier kept out of the log.`);
    if (v === '[redacted]') said(`details.${k} was dropped: it looked like a credential.`);
  }
  if (!redaction.children.length) said('Nothing in this record was redacted.');

  const links = $('record-links');
  links.replaceChildren();
  const decisionId = record.details?.decision_id;
  if (decisionId) links.append(linkButton(`Records of decision ${decisionId}`, () => sameDecision(record, decisionId)));
  if (record.token_id) links.append(linkButton('This token\'s lifecycle, as a timeline', () => timeline(record.token_id)));
  if (record.policy_digest) links.append(linkButton(`The policy change that put ${record.policy_digest.slice(0, 19)}… in force`, () => policyChange(record.policy_digest)));
  if (record.actor) links.append(linkButton(`Everything by ${record.actor}`, () => findWith({ actor: record.actor })));

  $('verify-result').textContent = '';
  $('verify-result').className = '';
  $('verify-steps').replaceChildren();
  $('timeline').hidden = true;
  $('record-title').focus();
}

/** The records within `around` of `seq` (those written with it) that `match`. */
async function near(seq, match, around = 50) {
  const found = [];
  let after = Math.max(0, seq - around - 1);
  while (after !== null && after < seq + around) {
    const answer = await page(new URLSearchParams(), after);
    for (const r of answer.events) if (r.seq <= seq + around && match(r)) found.push(r);
    after = answer.next_cursor;
  }
  return found;
}

async function sameDecision(record, id) {
  const list = $('timeline-list');
  $('timeline-title').textContent = `Records of decision ${id} (written within 50 records of this one)`;
  list.replaceChildren();
  for (const r of await near(record.seq, (r) => r.details?.decision_id === id)) list.append(timelineItem(r));
  $('timeline').hidden = false;
}

function timelineItem(r) {
  const li = document.createElement('li');
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'link';
  b.textContent = `${r.ts} — ${r.kind} by ${r.actor}${r.decision ? ` (${r.decision})` : ''}`;
  b.addEventListener('click', () => showRecord(r));
  li.append(b);
  return li;
}

async function timeline(tokenDigest) {
  const list = $('timeline-list');
  $('timeline-title').textContent = 'Token timeline: issued → used → refreshed → revoked';
  list.replaceChildren();
  const query = new URLSearchParams({ token_digest: tokenDigest });
  let after = null;
  do {
    const answer = await page(query, after);
    for (const r of answer.events) list.append(timelineItem(r));
    after = answer.next_cursor;
  } while (after !== null && list.children.length < 1000);
  $('timeline').hidden = false;
}

async function policyChange(digest) {
  const list = $('timeline-list');
  $('timeline-title').textContent = `Policy changes to ${digest}`;
  list.replaceChildren();
  const answer = await page(new URLSearchParams({ kind: 'policy.updated' }), null);
  for (const r of answer.events.filter((r) => r.policy_digest === digest || r.details?.digest === digest)) {
    list.append(timelineItem(r));
  }
  if (!list.children.length) list.append(Object.assign(document.createElement('li'), { textContent: 'No policy.updated record names this digest in the first page of policy changes.' }));
  $('timeline').hidden = false;
}

// --- Verify ----------------------------------------------------------------

function step(text) {
  const li = document.createElement('li');
  li.textContent = text;
  $('verify-steps').append(li);
}

function verdict(ok, text) {
  const result = $('verify-result');
  result.textContent = `${ok ? 'Verified' : 'Not verified'}: ${text}`;
  result.className = ok ? 'verified' : 'failed';
}

async function verifyRecord(record) {
  $('verify-steps').replaceChildren();
  const pinned = localStorage.getItem(PINNED);
  if (!pinned) return verdict(false, 'no log key is pinned. Pin the key the operator gave you under "Pinned keys".');
  let key;
  try {
    key = await parseVerifierKey(pinned);
  } catch (e) {
    return verdict(false, `the pinned key is not usable: ${e.message}.`);
  }
  step(`Pinned key: ${key.name}.`);
  let checkpoint;
  const note = await api('/log/checkpoint', { text: true });
  try {
    checkpoint = await openCheckpoint(note, key);
  } catch (e) {
    return verdict(false, `${e.message}.`);
  }
  step(`Checkpoint signed by the pinned key: ${checkpoint.size} records, root ${hex(checkpoint.root).slice(0, 16)}….`);

  // Witnesses: the same checkpoint vouched for by enough of those pinned.
  const pinnedWitnesses = JSON.parse(localStorage.getItem(WITNESSES) ?? '[]');
  let witnessed = '';
  if (pinnedWitnesses.length) {
    const quorum = Number(localStorage.getItem(QUORUM) ?? '1');
    let cosigned;
    try {
      const witnesses = await Promise.all(pinnedWitnesses.map((w) => parseVerifierKey(w, COSIGNATURE_V1)));
      cosigned = await cosignedBy(note, witnesses);
    } catch (e) {
      return verdict(false, `${e.message}.`);
    }
    if (cosigned.length < quorum) {
      return verdict(false, `the checkpoint is cosigned by ${cosigned.length} of the ${pinnedWitnesses.length} pinned witness(es) and ${quorum} are required: no quorum of independent witnesses vouches that this is the log everyone else sees.`);
    }
    const when = (c) => `${c.name} at ${new Date(Number(c.time) * 1000).toISOString()}`;
    step(`Cosigned by ${cosigned.length} pinned witness(es), ${quorum} required: ${cosigned.map(when).join('; ')}.`);
    witnessed = `, cosigned by ${cosigned.map((c) => c.name).join(' and ')}`;
  }
  if (record.seq > checkpoint.size) {
    return verdict(false, `record ${record.seq} is newer than the latest signed checkpoint (${checkpoint.size} records); try again in a moment.`);
  }

  // The log only grew since this browser last verified it.
  const seen = JSON.parse(localStorage.getItem(SEEN) ?? 'null');
  if (seen && seen.origin === checkpoint.origin) {
    const older = seen.size <= checkpoint.size ? seen : { size: checkpoint.size, root: hex(checkpoint.root) };
    const newer = seen.size <= checkpoint.size ? { size: checkpoint.size, root: hex(checkpoint.root) } : seen;
    let proof = [];
    if (older.size !== newer.size && older.size > 0) {
      proof = (await api(`/v1/audit/proofs/consistency?from=${older.size}&to=${newer.size}`)).proof.map(fromHex);
    }
    const consistent = await verifyConsistency(older.size, newer.size, fromHex(older.root), fromHex(newer.root), proof);
    if (!consistent || seen.size > checkpoint.size) {
      return verdict(false, `the log is not consistent with the checkpoint this browser verified before (${seen.size} records, root ${seen.root.slice(0, 16)}…): it was rewritten or cut.`);
    }
    step(`Consistent with the checkpoint this browser verified before (${seen.size} records).`);
  }

  const leaf = await recordLeaf(record);
  step(`Leaf recomputed from the record's canonical JSON: ${hex(leaf).slice(0, 16)}….`);
  const proof = await api(`/v1/audit/proofs/inclusion?seq=${record.seq}&tree_size=${checkpoint.size}`);
  const included = await verifyInclusion(record.seq - 1, checkpoint.size, leaf, proof.proof.map(fromHex), checkpoint.root);
  if (!included) {
    return verdict(false, `record ${record.seq} as served does not hash into the signed tree: its content differs from what was logged.`);
  }
  step(`Inclusion proof (${proof.proof.length} hashes) leads from the leaf to the signed root.`);
  localStorage.setItem(SEEN, JSON.stringify({ origin: checkpoint.origin, size: checkpoint.size, root: hex(checkpoint.root) }));
  return verdict(true, `record ${record.seq} is in the log ${checkpoint.origin} of ${checkpoint.size} records, signed by ${key.name}${witnessed}.`);
}

$('verify').addEventListener('click', async () => {
  $('verify-result').textContent = 'Verifying…';
  $('verify-result').className = '';
  try {
    // The record as the server serves it now, not as first listed.
    const fresh = (await page(new URLSearchParams(), current.seq - 1)).events[0];
    await verifyRecord(fresh ?? current);
  } catch (e) {
    verdict(false, `the check could not complete: ${e.message}.`);
  }
});

// --- Pinned keys -----------------------------------------------------------

function showPinned() {
  const pinned = localStorage.getItem(PINNED);
  $('pin-status').textContent = pinned ? `Pinned: ${pinned}` : 'No key pinned.';
}

$('pin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const text = $('log-key').value.trim();
  try {
    await parseVerifierKey(text);
  } catch (e) {
    $('pin-status').textContent = `Not pinned: ${e.message}.`;
    return;
  }
  if (localStorage.getItem(PINNED) !== text) localStorage.removeItem(SEEN);
  localStorage.setItem(PINNED, text);
  $('log-key').value = '';
  showPinned();
});

function showWitnesses() {
  const pinned = JSON.parse(localStorage.getItem(WITNESSES) ?? '[]');
  const quorum = localStorage.getItem(QUORUM) ?? '1';
  $('witness-status').textContent = pinned.length
    ? `${quorum} of these ${pinned.length} witness(es) must cosign: ${pinned.map((w) => w.split('+')[0]).join(', ')}.`
    : 'No witness pinned: a checkpoint signed by the log key is enough.';
}

$('witness-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const lines = $('witness-keys').value.split('\n').map((l) => l.trim()).filter(Boolean);
  const quorum = Number($('quorum').value);
  if (!Number.isInteger(quorum) || quorum < 1 || (lines.length && quorum > lines.length)) {
    $('witness-status').textContent = `Not pinned: the quorum must be a whole number from 1 to the number of witnesses (${lines.length}).`;
    return;
  }
  for (const line of lines) {
    try {
      await parseVerifierKey(line, COSIGNATURE_V1);
    } catch (e) {
      $('witness-status').textContent = `Not pinned: ${line.slice(0, 40)}…: ${e.message}.`;
      return;
    }
  }
  localStorage.setItem(WITNESSES, JSON.stringify(lines));
  localStorage.setItem(QUORUM, String(quorum));
  $('witness-keys').value = '';
  showWitnesses();
});

// --- Start -----------------------------------------------------------------

showPinned();
showWitnesses();
if (apiKey) {
  signIn(apiKey).then(() => {
    showApp(true);
    return Promise.all([search(), overview()]);
  }, () => showApp(false));
} else {
  showApp(false);
}
