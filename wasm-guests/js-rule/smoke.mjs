// Smoke test of built components, without wasmtime: each rule in a rules
// folder's manifest.json is transpiled to JS with jco and run in Node against
// a few requests. Not the host's test suite: it checks the guests honour the
// `warrant:rule` contract (exports, types, host import, verdicts).
//
// Usage: node smoke.mjs <rules-dir>   (build.sh runs it on dist/)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { WASIShim } from '@bytecodealliance/preview2-shim/instantiation';

const here = dirname(fileURLToPath(import.meta.url));
const jco = join(here, 'node_modules', '.bin', 'jco');
const dir = resolve(process.argv[2] ?? join(here, '..', 'dist'));
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));

const ref = (type, id) => ({ typeName: type, id });
const req = (action, context) => ({
  principal: ref('Analytics::User', 'u7'),
  action: ref('Analytics::Action', action),
  resource: ref('Analytics::Connection', 'c1'),
  contextJson: typeof context === 'string' ? context : JSON.stringify(context),
});

// [action, context, expected "effect" or "effect:reason", optional config]
const cases = {
  'sql-guard': [
    ['run_query', { sql: 'SELECT id, total FROM sales.orders' }, 'allow'],
    ['run_query', { sql: 'SELECT * FROM "HR".salaries' }, 'deny:pii_table:hr.salaries'],
    ['run_query', { sql: "SELECT 'ssn' FROM people -- ssn" }, 'allow'],
    ['run_query', { sql: 'SELECT ssn FROM people', purpose: 'fraud_review' }, 'allow:pii_column:ssn;purpose:fraud_review'],
    ['run_query', { sql: 'SELECT ssn FROM people', purpose: 'marketing' }, 'deny:pii_column:ssn'],
    ['run_query', {}, 'abstain'],
    ['run_query', '[1]', 'deny:invalid_context'],
    ['use_token', { sql: 'SELECT ssn FROM people' }, 'abstain'],
    // Another config on the same instance: the config cache must not stick.
    ['run_query', { sql: 'SELECT ssn FROM people' }, 'allow', { pii: { columns: ['email'] } }],
    ['run_query', { sql: 'SELECT 1' }, 'deny:invalid_config', { pii: { tables: ['a..b'] } }],
  ],
  'token-max-age': [
    ['use_token', { token_issued_at: '2026-03-01T00:00:00Z', now: '2026-04-01T00:00:00Z' }, 'allow'],
    ['use_token', { token_issued_at: '2025-12-01T00:00:00+01:00', now: '2026-04-01T00:00:00Z' }, 'deny:token_too_old'],
    ['use_token', { now: '2026-04-01T00:00:00Z' }, 'deny:missing_context:token_issued_at'],
    ['refresh_token', {}, 'abstain'],
  ],
  'change-window': [
    ['revoke_token', { now: '2026-03-03T09:00:00Z', principal_role: 'editor' }, 'allow'],
    ['revoke_token', { now: '2026-03-04T09:00:00Z', principal_role: 'editor' }, 'deny:outside_change_window'],
    ['transfer_ownership', { now: '2026-03-04T09:00:00Z', principal_role: 'admin' }, 'allow:admin_exempt'],
    // Berlin switches to CEST on 2026-03-29: 07:30Z is 08:30 before, 09:30 after.
    ['revoke_token', { now: '2026-03-24T07:30:00Z' }, 'deny:outside_change_window'],
    ['revoke_token', { now: '2026-03-31T07:30:00Z' }, 'allow'],
    ['revoke_token', {}, 'deny:missing_context:now'],
    ['use_token', {}, 'abstain'],
  ],
  'purpose-required': [
    ['run_query', { purpose: 'fraud_review' }, 'allow'],
    ['run_query', {}, 'deny:purpose_missing'],
    ['run_query', { purpose: 'curiosity' }, 'deny:purpose_not_allowed:curiosity'],
    ['use_token', {}, 'abstain'],
    ['run_query', { purpose: 'fraud_review' }, 'deny:invalid_config', { actions: 'run_query' }],
  ],
};

// Initial linear memory of a core module (memory section, id 5), in bytes.
function initialMemory(bytes) {
  let pos = 8;
  const leb = () => {
    let result = 0, shift = 0, byte;
    do { byte = bytes[pos++]; result += (byte & 0x7f) * 2 ** shift; shift += 7; } while (byte & 0x80);
    return result;
  };
  while (pos < bytes.length) {
    const id = bytes[pos++];
    const size = leb();
    const end = pos + size;
    if (id === 5 && leb() > 0) { pos++; return leb() * 65536; }
    pos = end;
  }
  return 0;
}

async function load(file) {
  const out = mkdtempSync(join(tmpdir(), 'warrant-smoke-'));
  try {
    execFileSync(jco, ['transpile', file, '-o', out, '--instantiation', 'async', '--name', 'rule', '--quiet']);
    const memory = readdirSync(out).filter((f) => f.endsWith('.wasm'))
      .reduce((sum, f) => sum + initialMemory(readFileSync(join(out, f))), 0);
    const { instantiate } = await import(pathToFileURL(join(out, 'rule.js')));
    const logs = [];
    const host = { log: (msg) => logs.push(msg) };
    const imports = { ...new WASIShim().getImportObject(), 'warrant:rule/host': host, 'warrant:rule/host@0.1.0': host };
    const getCoreModule = (name) => WebAssembly.compile(readFileSync(join(out, name)));
    return { rule: await instantiate(getCoreModule, imports), logs, memory };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

let failures = 0;
for (const entry of manifest.rules) {
  const stem = entry.file.replace(/\.wasm$/, '');
  const files = [entry.file, `${stem}.nowasi.wasm`].filter((f) => existsSync(join(dir, f)));
  for (const file of files) {
    const { rule, logs, memory } = await load(join(dir, file));
    let passed = 0;
    for (const [action, context, expected, config] of cases[entry.name] ?? []) {
      const v = rule.evaluate(JSON.stringify(config ?? entry.config), req(action, context));
      const got = v.reason == null ? v.effect : `${v.effect}:${v.reason}`;
      if (got === expected) passed++;
      else { failures++; console.error(`FAIL ${file} ${action} ${JSON.stringify(context)}: got ${got}, want ${expected}`); }
    }
    const body = req(entry.actions[0], {});
    const n = 2000;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < n; i++) rule.evaluate(JSON.stringify(entry.config), body);
    const us = Number(process.hrtime.bigint() - t0) / n / 1000;
    console.log(`${file.padEnd(28)} ${passed}/${(cases[entry.name] ?? []).length} cases ok, ` +
      `initial memory ${(memory / 1048576).toFixed(2)} MiB, ~${us.toFixed(1)} µs/call in Node, ${logs.length} log lines`);
  }
}
if (failures > 0) {
  console.error(`${failures} smoke case(s) failed`);
  process.exit(1);
}
