// The console's in-browser checks (service/console/verify.js) under Node's
// WebCrypto, against the c2sp.org/tlog-cosignature example checkpoint and a
// witness cosignature the engine's tests also check
// (engine/src/audit/cosignature.rs). Run by tests/console/run.
import assert from 'node:assert/strict';

import { COSIGNATURE_V1, cosignedBy, parseVerifierKey } from '../../service/console/verify.js';

const SOFA = 'example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n';
const SOFA_LOG_LINE = '\u2014 example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=';
const W1_VKEY = 'witness.example/w1+cc9a7044+BBpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const W1_LINE = '\u2014 witness.example/w1 zJpwRAAAAABkGFDLJeR//pqzhnEKVvEm2wWbh2RJ6oru5+cUUfm5X9NnlaGr8aSH9QE5RVZD4QGlxl2F5UpVIIi94p178KLfqPPsAA==';
const note = (text, lines) => `${text}\n${lines.join('\n')}\n`;

let checks = 0;
const w1 = await parseVerifierKey(W1_VKEY, COSIGNATURE_V1);
assert.equal(w1.name, 'witness.example/w1');
checks++;

// A witness key is not a log key, and the reverse.
await assert.rejects(parseVerifierKey(W1_VKEY), /not an Ed25519 note key/);
checks++;

// The example cosignature verifies, with its time.
const found = await cosignedBy(note(SOFA, [SOFA_LOG_LINE, W1_LINE]), [w1]);
assert.deepEqual(found, [{ name: 'witness.example/w1', time: 1679315147n }]);
checks++;

// No line of a pinned witness: none found. Another note text: the line is forged.
assert.deepEqual(await cosignedBy(note(SOFA, [SOFA_LOG_LINE]), [w1]), []);
const altered = SOFA.replace('20852163', '20852164');
await assert.rejects(cosignedBy(note(altered, [SOFA_LOG_LINE, W1_LINE]), [w1]), /witness.example\/w1 does not verify/);
checks += 2;

// A line under the witness's name with another key id is someone else's: ignored.
const bytes = Buffer.from(W1_LINE.split(' ')[2], 'base64');
bytes[0] ^= 1;
assert.deepEqual(await cosignedBy(note(SOFA, [`\u2014 witness.example/w1 ${bytes.toString('base64')}`]), [w1]), []);
checks++;

console.log(`verify.js: ok, ${checks} checks`);
