//! The audit log end to end (docs/audit.md): tampering with the SQLite file is
//! found at the first affected `seq`, online and offline; checkpoints and
//! proofs verify with an independent RFC 9162 verifier; secrets never reach
//! the files, the log or exports. `records` covers what is recorded and how
//! it is queried.

mod log;
mod records;
mod witnessed;

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::credentials::{FUTURE, event, resolve, setup};
use crate::server::{Server, copy_database, warrant_command};

// ---------------------------------------------------------------------------
// SHA-256 (FIPS 180-4) and RFC 9162 §2.1 written from the specifications, so
// the proofs are checked by code that shares nothing with the service's.

type Hash = [u8; 32];

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2,
];

fn sha256(data: &[u8]) -> Hash {
    let mut h: [u32; 8] =
        [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&(data.len() as u64 * 8).to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16].wrapping_add(s0).wrapping_add(w[i - 7]).wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut hh] = h;
        for (k, wi) in K.iter().zip(w) {
            let t1 = hh
                .wrapping_add(e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25))
                .wrapping_add((e & f) ^ (!e & g))
                .wrapping_add(*k)
                .wrapping_add(wi);
            let t2 =
                (a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22)).wrapping_add((a & b) ^ (a & c) ^ (b & c));
            (hh, g, f, e, d, c, b, a) = (g, f, e, d.wrapping_add(t1), c, b, a, t1.wrapping_add(t2));
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e, f, g, hh]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 32];
    for (chunk, v) in out.chunks_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0u8][..], data].concat())
}

fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[1u8][..], left, right].concat())
}

/// MTH(D[n]), RFC 9162 §2.1.1: split at the largest power of two below n.
fn mth(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sha256(b""),
        1 => leaves[0],
        n => {
            let k = 1 << (usize::BITS - 1 - (n - 1).leading_zeros());
            node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
        }
    }
}

/// RFC 9162 §2.1.3.2, step by step.
fn verify_inclusion(index: u64, size: u64, leaf: &Hash, path: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s, mut r) = (index, size - 1, *leaf);
    for p in path {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            while f & 1 == 0 && f != 0 {
                (f, s) = (f >> 1, s >> 1);
            }
        } else {
            r = node_hash(&r, p);
        }
        (f, s) = (f >> 1, s >> 1);
    }
    s == 0 && r == *root
}

/// RFC 9162 §2.1.4.2, step by step (equal sizes: an empty proof, equal roots).
fn verify_consistency(first: u64, second: u64, first_hash: &Hash, second_hash: &Hash, proof: &[Hash]) -> bool {
    if first == second {
        return proof.is_empty() && first_hash == second_hash;
    }
    if first == 0 || first > second || proof.is_empty() {
        return false;
    }
    let mut path = proof.to_vec();
    if first.is_power_of_two() {
        path.insert(0, *first_hash);
    }
    let (mut f, mut s) = (first - 1, second - 1);
    while f & 1 == 1 {
        (f, s) = (f >> 1, s >> 1);
    }
    let (mut fr, mut sr) = (path[0], path[0]);
    for c in &path[1..] {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f & 1 == 0 && f != 0 {
                (f, s) = (f >> 1, s >> 1);
            }
        } else {
            sr = node_hash(&sr, c);
        }
        (f, s) = (f >> 1, s >> 1);
    }
    fr == *first_hash && sr == *second_hash && s == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Hash {
    assert_eq!(text.len(), 64, "{text}");
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or_else(|_| panic!("hex: {text}"));
    }
    out
}

fn hashes(v: &Value) -> Vec<Hash> {
    v.as_array().expect("array of hex hashes").iter().map(|h| unhex(h.as_str().unwrap())).collect()
}

#[test]
fn the_independent_verifier_matches_published_vectors() {
    assert_eq!(hex(&sha256(b"")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_eq!(hex(&sha256(b"abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    let long = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_eq!(hex(&sha256(long)), "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    assert_eq!(hex(&leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
    // Every proof over a small tree of our own verifies; a wrong root does not.
    let leaves: Vec<Hash> = (0u8..9).map(|i| leaf_hash(&[i])).collect();
    let path = [leaves[1], node_hash(&leaves[2], &leaves[3]), mth(&leaves[4..8]), leaves[8]];
    assert!(verify_inclusion(0, 9, &leaves[0], &path, &mth(&leaves)));
    assert!(!verify_inclusion(0, 9, &leaves[0], &path, &mth(&leaves[..8])));
    assert!(verify_consistency(4, 9, &mth(&leaves[..4]), &mth(&leaves), &[mth(&leaves[4..8]), leaves[8]]));
}

// ---------------------------------------------------------------------------
// Helpers.

/// Runs SQL on a database file with the `sqlite3` command: what someone
/// holding the file can do.
fn sqlite(db: &Path, sql: &str) -> Result<(), String> {
    let out =
        Command::new("sqlite3").arg("-bail").arg(db).arg(sql).output().expect("run sqlite3 (apt install sqlite3)");
    if out.status.success() { Ok(()) } else { Err(String::from_utf8_lossy(&out.stderr).into_owned()) }
}

/// `warrant audit <args> --database-url sqlite://db --audit-key-file …`: exit code and stdout.
fn cli(server: &Server, db: &Path, args: &[&str]) -> (i32, String) {
    let out = warrant_command(server.config_home())
        .arg("audit")
        .args(args)
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .arg("--audit-key-file")
        .arg(server.audit_key_file())
        .output()
        .expect("run warrant audit");
    let code = out.status.code().expect("exit code");
    assert!(code != 2, "warrant audit {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    (code, String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn verify(server: &Server, query: &str) -> Value {
    let r = server.get(&format!("/v1/audit/verify{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

async fn authorize(server: &Server, who: &str, action: &str, project: &str) -> Value {
    let body = json!({"principal": {"type": "User", "id": who}, "action": action,
                      "resource": {"type": "Project", "id": project}});
    let r = server.post("/v1/authorize", &body).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.json
}

/// A log with every kind and every optional field in use (credentials.rs's
/// entities). Returns the `seq` of an allowed `token.used` record (all 15
/// fields set) with several records after it.
async fn populate(server: &Server) -> u64 {
    // Olivia's token is revoked below, and a revoked id stays revoked: each
    // call issues her a new one.
    let olivia = format!("tok-olivia-{}", server.audit_events("kind=token.revoked").await.len());
    event(server, "token.issued", &olivia, "olivia", "c_wh", "ANALYST", FUTURE).await;
    event(server, "token.issued", "tok-eddie", "eddie", "c_wh", "ANALYST", FUTURE).await;
    event(server, "token.issued", "tok-fixed", "eddie", "c_fixed", "ANALYST", FUTURE).await;
    resolve(server, "eddie", "p_notebook_only", "c_wh", "notebook").await;
    resolve(server, "eddie", "p_disabled", "c_fixed", "app").await;
    resolve(server, "erin", "p_disabled", "c_wh", "notebook").await;
    authorize(server, "eddie", "view_notebook", "p_disabled").await;
    authorize(server, "nadia", "view_notebook", "p_disabled").await;
    event(server, "token.refreshed", "tok-eddie", "eddie", "c_wh", "ANALYST", FUTURE).await;
    event(server, "token.revoked", &olivia, "olivia", "c_wh", "ANALYST", "").await;
    event(server, "token.expired", "tok-fixed", "eddie", "c_fixed", "ANALYST", "").await;
    resolve(server, "eddie", "p_notebook_only", "c_wh", "notebook").await;
    resolve(server, "eddie", "p_disabled", "c_fixed", "app").await;
    let used = server.audit_events("kind=token.used&decision=allow").await;
    let target = &used[0];
    for field in ["token_id", "token_owner", "connection", "project", "decision", "reasons", "policy_digest"] {
        assert!(target.get(field).is_some(), "{field} missing from {target}");
    }
    target["seq"].as_u64().unwrap()
}

/// A populated server, stopped (its files complete), the target `seq` and
/// the last `seq`.
async fn stopped_log() -> (Server, u64, u64) {
    let mut server = setup().await;
    let target = populate(&server).await;
    let last = server.audit_events("").await.len() as u64;
    assert!(last >= target + 3, "records after the target");
    server.stop();
    (server, target, last)
}

/// A copy of `source`'s (stopped) database with `sql` applied.
fn altered_copy(source: &Server, dir: &Path, name: &str, sql: &str) -> std::path::PathBuf {
    let db = dir.join(format!("{name}.db"));
    copy_database(&source.database_path(), &db);
    sqlite(&db, sql).unwrap_or_else(|e| panic!("{name}: {e}"));
    db
}

/// Both verifiers report `seq` as the first bad record of `db`.
async fn assert_found_at(source: &Server, db: &Path, seq: u64, what: &str, checkpoint: Option<&Path>) {
    let mut args = vec!["verify"];
    let file = checkpoint.map(|p| p.display().to_string());
    if let Some(f) = &file {
        args.extend(["--checkpoint", f]);
    }
    let (code, out) = cli(source, db, &args);
    assert_eq!(code, 1, "{what}: the CLI must fail: {out}");
    assert!(out.starts_with(&format!("FAILED at seq {seq}: ")), "{what}: want seq {seq}: {out}");
    if checkpoint.is_none() {
        let copy = Server::start_from(source, db);
        let report = verify(&copy, "").await;
        assert_eq!((&report["ok"], &report["first_bad_seq"]), (&json!(false), &json!(seq)), "{what}: {report}");
        assert!(report["reason"].as_str().is_some_and(|r| !r.is_empty()), "{report}");
    }
}

const COLUMNS: &str = "ts, kind, actor, token_id, token_owner, connection, project, decision, reasons, policy_digest, details, key_id, prev_mac, mac";
const FAKE_MAC: &str = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e";

// ---------------------------------------------------------------------------
// Tampering.

#[tokio::test]
async fn changing_any_field_of_a_record_is_found_at_its_seq() {
    let (server, k, _) = stopped_log().await;
    let dir = tempfile::tempdir().unwrap();
    // Untouched, both verifiers pass; the schema refuses UPDATE and DELETE.
    let (code, out) = cli(&server, &server.database_path(), &["verify"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("ok: "), "{out}");
    let untouched = altered_copy(&server, dir.path(), "untouched", "SELECT 1;");
    assert_eq!(verify(&Server::start_from(&server, &untouched), "").await["ok"], true);
    for sql in [
        format!("UPDATE audit_records SET actor = 'x' WHERE seq = {k};"),
        format!("DELETE FROM audit_records WHERE seq = {k};"),
    ] {
        let e = sqlite(&untouched, &sql).expect_err("the audit table must refuse UPDATE and DELETE");
        assert!(e.contains("append-only"), "{e}");
    }
    let flip = |col: &str| format!("(CASE substr({col}, 1, 1) WHEN '0' THEN '1' ELSE '0' END) || substr({col}, 2)");
    let changes = [
        ("ts", "'2001-01-01T00:00:00.000000Z'".to_owned()),
        ("kind", "'token.refreshed'".to_owned()),
        ("actor", "'User::mallory'".to_owned()),
        ("token_id", "'hmac-sha256:' || mac".to_owned()),
        ("token_owner", "'mallory'".to_owned()),
        ("connection", "'c_other'".to_owned()),
        ("project", "'p_other'".to_owned()),
        ("decision", "CASE decision WHEN 'allow' THEN 'deny' ELSE 'allow' END".to_owned()),
        ("reasons", "'[\"no_permit\"]'".to_owned()),
        ("policy_digest", "'sha256:' || mac".to_owned()),
        ("details", "json_set(details, '$.surface', 'app')".to_owned()),
        ("key_id", "'k0'".to_owned()),
        ("prev_mac", flip("prev_mac")),
        ("mac", flip("mac")),
    ];
    for (field, value) in changes {
        let sql = format!(
            "DROP TRIGGER audit_records_no_update; UPDATE audit_records SET {field} = {value} WHERE seq = {k};"
        );
        let db = altered_copy(&server, dir.path(), field, &sql);
        assert_found_at(&server, &db, k, field, None).await;
    }
    // The same JSON, other text: details are stored as the exact canonical
    // bytes the MAC covers, so rewriting them is a change too.
    let sql = format!(
        "DROP TRIGGER audit_records_no_update; UPDATE audit_records SET details = ' ' || details WHERE seq = {k};"
    );
    let db = altered_copy(&server, dir.path(), "details_text", &sql);
    assert_found_at(&server, &db, k, "details rewritten as equal JSON", None).await;
    let (_, out) = cli(&server, &db, &["verify"]);
    assert!(out.contains("rewritten"), "{out}");
    // Ranges: only a range holding the changed record fails (its MAC is
    // intact, so the chain after it still links).
    let db = dir.path().join("actor.db");
    let copy = Server::start_from(&server, &db);
    for (from, to, bad) in [(1, k - 1, None), (k + 1, k + 3, None), (k - 1, k + 1, Some(k)), (k, k, Some(k))] {
        let (code, out) = cli(&server, &db, &["verify", "--from", &from.to_string(), "--to", &to.to_string()]);
        let report = verify(&copy, &format!("?from={from}&to={to}")).await;
        match bad {
            None => {
                assert_eq!(code, 0, "{from}..={to}: {out}");
                assert_eq!((&report["ok"], &report["from"], &report["to"]), (&json!(true), &json!(from), &json!(to)));
            }
            Some(seq) => {
                assert!(code == 1 && out.starts_with(&format!("FAILED at seq {seq}: ")), "{from}..={to}: {out}");
                assert_eq!(report["first_bad_seq"], seq, "{report}");
            }
        }
    }
}

#[tokio::test]
async fn deleting_inserting_renumbering_or_swapping_records_is_found() {
    let (server, k, last) = stopped_log().await;
    let dir = tempfile::tempdir().unwrap();
    let drop = "DROP TRIGGER audit_records_no_update; DROP TRIGGER audit_records_no_delete;";
    let cases = [
        // A middle record removed: the next one sits where it was expected.
        ("delete", format!("{drop} DELETE FROM audit_records WHERE seq = {k};"), k),
        // Removed and the rest renumbered to close the gap: its successor's
        // prev_mac names the removed record.
        (
            "delete+renumber",
            format!("{drop} DELETE FROM audit_records WHERE seq = {k}; UPDATE audit_records SET seq = -seq WHERE seq > {k}; UPDATE audit_records SET seq = -seq - 1 WHERE seq < 0;"),
            k,
        ),
        // Records shifted up to make room for a forged one, chained to its
        // predecessor but with a made-up MAC.
        (
            "renumber+insert",
            format!("{drop} UPDATE audit_records SET seq = -seq WHERE seq >= {k}; UPDATE audit_records SET seq = -seq + 1 WHERE seq < 0;
                     INSERT INTO audit_records (seq, ts, kind, actor, details, key_id, prev_mac, mac)
                     SELECT {k}, ts, 'token.revoked', 'User::mallory', '{{}}', key_id, mac, '{FAKE_MAC}' FROM audit_records WHERE seq = {k} - 1;"),
            k,
        ),
        // A forged record appended after the newest.
        (
            "append",
            format!("INSERT INTO audit_records (seq, ts, kind, actor, details, key_id, prev_mac, mac)
                     SELECT seq + 1, ts, 'token.revoked', 'User::mallory', '{{}}', key_id, mac, '{FAKE_MAC}'
                     FROM audit_records WHERE seq = {last};"),
            last + 1,
        ),
        // Two records' contents swapped (each keeps its seq).
        (
            "swap",
            format!("{drop} CREATE TEMP TABLE saved AS SELECT * FROM audit_records WHERE seq IN ({k}, {j});
                     UPDATE audit_records SET ({COLUMNS}) = (SELECT {COLUMNS} FROM saved WHERE saved.seq = {k} + {j} - audit_records.seq)
                     WHERE seq IN ({k}, {j});", j = k + 2),
            k,
        ),
    ];
    for (what, sql, seq) in cases {
        let db = altered_copy(&server, dir.path(), what, &sql);
        assert_found_at(&server, &db, seq, what, None).await;
    }
}

#[tokio::test]
async fn cutting_off_the_newest_records_is_found_against_a_kept_checkpoint() {
    let mut server = setup().await;
    populate(&server).await;
    // Past a full tile of 256 records.
    for _ in 0..260 {
        authorize(&server, "eddie", "view_notebook", "p_disabled").await;
    }
    let r = server.get("/v1/audit/checkpoint").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let checkpoint = r.json;
    let n = checkpoint["tree_size"].as_u64().unwrap();
    let root = checkpoint["root"].as_str().unwrap().to_owned();
    assert_eq!(n, server.audit_events("").await.len() as u64);
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("checkpoint.json");
    std::fs::write(&kept, checkpoint.to_string()).unwrap();
    let report = verify(&server, &format!("?tree_size={n}&root={root}")).await;
    assert_eq!(report["ok"], true, "{report}");
    server.stop();
    let (code, out) = cli(&server, &server.database_path(), &["verify", "--checkpoint", kept.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");

    let k = n - 3;
    let cut = format!("DROP TRIGGER audit_records_no_delete; DELETE FROM audit_records WHERE seq > {k};");
    // The checkpoint the service stored when it published it catches a cut.
    let db = altered_copy(&server, dir.path(), "cut", &cut);
    assert_found_at(&server, &db, k + 1, "cut under a stored checkpoint", None).await;
    // Remove the stored checkpoints too: the tree's stored full tiles (of
    // 256 records) still cover records cut below one, and the service
    // starts but appends nothing.
    let drop_checkpoints = "DROP TRIGGER audit_checkpoints_no_delete; DELETE FROM audit_checkpoints;";
    let below_tile = format!(
        "DROP TRIGGER audit_records_no_delete; DELETE FROM audit_records WHERE seq > 250; {drop_checkpoints} \
         DROP TRIGGER audit_log_checkpoints_no_delete; DELETE FROM audit_log_checkpoints;"
    );
    let db = altered_copy(&server, dir.path(), "cut_tile", &below_tile);
    assert_found_at(&server, &db, 251, "cut under the stored tiles", None).await;
    let copy = Server::start_from(&server, &db);
    let body = json!({"principal": {"type": "User", "id": "eddie"}, "action": "view_notebook",
                      "resource": {"type": "Project", "id": "p_disabled"}});
    let r = copy.post("/v1/authorize", &body).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR, "a decision must not be answered unaudited: {}", r.text);
    drop(copy);
    // Cut within the last partial tile (no stored tile covers it) and
    // remove the published checkpoints, and even the tiles: the chain alone
    // verifies (the service rebuilds the tiles from the records)...
    let sql = format!(
        "{cut} {drop_checkpoints} DROP TRIGGER audit_tiles_no_delete; DELETE FROM audit_tiles; \
         DROP TRIGGER audit_log_checkpoints_no_delete; DELETE FROM audit_log_checkpoints;"
    );
    let db = altered_copy(&server, dir.path(), "cut_all", &sql);
    let (code, out) = cli(&server, &db, &["verify"]);
    assert_eq!(code, 0, "a chain cannot show a cut by itself: {out}");
    let copy = Server::start_from(&server, &db);
    assert_eq!(verify(&copy, "").await["ok"], true);
    // ...but not against the checkpoint the auditor kept, offline or online.
    assert_found_at(&server, &db, k + 1, "cut under a kept checkpoint", Some(&kept)).await;
    let report = verify(&copy, &format!("?tree_size={n}&root={root}")).await;
    assert_eq!((&report["ok"], &report["first_bad_seq"]), (&json!(false), &json!(k + 1)), "{report}");

    // A kept checkpoint is checked, not trusted: a wrong root fails on the intact log.
    let wrong = format!("{}{}", if root.starts_with('0') { '1' } else { '0' }, &root[1..]);
    let intact = Server::start_from(&server, &server.database_path());
    let report = verify(&intact, &format!("?tree_size={n}&root={wrong}")).await;
    assert_eq!((&report["ok"], &report["first_bad_seq"]), (&json!(false), &json!(n)), "{report}");
    let forged = dir.path().join("forged.json");
    let mut altered = checkpoint.clone();
    altered["root"] = json!(wrong);
    std::fs::write(&forged, altered.to_string()).unwrap();
    let (code, out) = cli(&server, &server.database_path(), &["verify", "--checkpoint", forged.to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
}

/// A log whose checkpoints were signed while leaves hashed each record's
/// MAC (before migration `0011_audit_leaves_over_content`) still verifies:
/// checkpoints up to the size the migration recorded are checked against
/// the MAC leaves, and a checkpoint over MAC leaves the migration did not
/// vouch for does not verify.
#[tokio::test]
async fn checkpoints_signed_over_mac_leaves_before_the_migration_still_verify() {
    let mut server = setup().await;
    populate(&server).await;
    let records = server.audit_events("").await;
    server.stop();
    let size = records.len() - 2;
    let mac_leaves: Vec<Hash> = records.iter().map(|r| leaf_hash(&unhex(r["mac"].as_str().unwrap()))).collect();
    let root = hex(&mth(&mac_leaves[..size]));
    // Signed as the service signed checkpoints then: HMAC over JCS of the fields.
    let key_file = std::fs::read_to_string(server.audit_key_file()).unwrap();
    let mut key_line =
        key_file.lines().find(|l| !l.starts_with('#') && !l.trim().is_empty()).unwrap().split_whitespace();
    let (key_id, secret_hex) = (key_line.next().unwrap(), key_line.next().unwrap());
    let secret: Vec<u8> =
        (0..secret_hex.len()).step_by(2).map(|i| u8::from_str_radix(&secret_hex[i..i + 2], 16).unwrap()).collect();
    let ts = "2026-06-01T00:00:00.000Z";
    let unsigned = json!({"key_id": key_id, "root": root, "tree_size": size, "ts": ts});
    let mut mac = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(&secret).unwrap();
    hmac::Mac::update(&mut mac, &serde_json_canonicalizer::to_vec(&unsigned).unwrap());
    let mac = hex(&hmac::Mac::finalize(mac).into_bytes());
    let insert = format!(
        "INSERT INTO audit_checkpoints (tree_size, root, ts, key_id, mac) VALUES ({size}, '{root}', '{ts}', '{key_id}', '{mac}');"
    );
    let dir = tempfile::tempdir().unwrap();
    let migrated = altered_copy(
        &server,
        dir.path(),
        "migrated",
        &format!("{insert} UPDATE audit_mac_leaves_until SET tree_size = {size};"),
    );
    let (code, out) = cli(&server, &migrated, &["verify"]);
    assert_eq!(code, 0, "a checkpoint from before the migration: {out}");
    assert!(out.contains("1 checkpoint(s) hold"), "it was checked: {out}");
    let unvouched = altered_copy(&server, dir.path(), "unvouched", &insert);
    let (code, out) = cli(&server, &unvouched, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("do not hash to the checkpoint's root"), "{out}");
}

// ---------------------------------------------------------------------------
// Proofs.

#[tokio::test]
async fn inclusion_and_consistency_proofs_verify_independently() {
    let server = setup().await;
    populate(&server).await;
    for _ in 0..20 {
        authorize(&server, "eddie", "view_notebook", "p_disabled").await;
    }
    let records = server.audit_events("").await;
    // A leaf is the hash of the record's entry: RFC 8785 JSON of the record
    // as served, `mac` included (here by an independent JCS library).
    let leaves: Vec<Hash> = records.iter().map(|r| leaf_hash(&serde_json_canonicalizer::to_vec(r).unwrap())).collect();
    let n = leaves.len() as u64;
    let checkpoint = server.get("/v1/audit/checkpoint").await.json;
    assert_eq!(checkpoint["tree_size"], n);
    let root = unhex(checkpoint["root"].as_str().unwrap());
    assert_eq!(root, mth(&leaves), "the checkpoint's root is MTH over SHA-256(0x00 ‖ JCS(record)) of every record");
    let leaf = |seq: u64| leaves[usize::try_from(seq - 1).unwrap()];
    let head = |size: u64| mth(&leaves[..usize::try_from(size).unwrap()]);
    let mut checked = 0;
    for (seq, size) in
        [(1, n), (2, n), (3, n), (n / 2, n), (n - 1, n), (n, n), (1, 1), (1, 2), (3, 5), (7, 8), (5, n - 1)]
    {
        let query = if size == n { format!("seq={seq}") } else { format!("seq={seq}&tree_size={size}") };
        let p = server.get(&format!("/v1/audit/proofs/inclusion?{query}")).await;
        assert_eq!(p.status, StatusCode::OK, "{}", p.text);
        assert_eq!(
            (&p.json["seq"], &p.json["leaf_index"], &p.json["tree_size"]),
            (&json!(seq), &json!(seq - 1), &json!(size))
        );
        assert_eq!(p.json["leaf_hash"], hex(&leaf(seq)));
        assert_eq!(p.json["root"], hex(&head(size)), "{query}");
        let path = hashes(&p.json["proof"]);
        assert!(verify_inclusion(seq - 1, size, &leaf(seq), &path, &head(size)), "{query}: {}", p.text);
        assert!(verify_inclusion(seq - 1, size, &leaf(seq), &path, &root) == (size == n));
        // Tampered: another leaf, a flipped bit, a hash missing.
        assert!(!verify_inclusion(seq - 1, size, &leaf(seq % n + 1), &path, &head(size)));
        if let Some(first) = path.first() {
            let mut bad = path.clone();
            bad[0] = {
                let mut h = *first;
                h[31] ^= 1;
                h
            };
            assert!(!verify_inclusion(seq - 1, size, &leaf(seq), &bad, &head(size)));
            assert!(!verify_inclusion(seq - 1, size, &leaf(seq), &path[1..], &head(size)));
            checked += 1;
        }
    }
    assert!(checked >= 8, "most proofs are non-empty");
    for (m, to) in [(1, n), (2, n), (3, n), (4, n), (7, n), (8, n), (n - 1, n), (n, n), (3, 7), (6, 13), (16, 17)] {
        let query = if to == n { format!("from={m}") } else { format!("from={m}&to={to}") };
        let c = server.get(&format!("/v1/audit/proofs/consistency?{query}")).await;
        assert_eq!(c.status, StatusCode::OK, "{}", c.text);
        assert_eq!((&c.json["from"], &c.json["to"]), (&json!(m), &json!(to)));
        assert_eq!((&c.json["root_from"], &c.json["root_to"]), (&json!(hex(&head(m))), &json!(hex(&head(to)))));
        let proof = hashes(&c.json["proof"]);
        assert!(verify_consistency(m, to, &head(m), &head(to), &proof), "{query}: {}", c.text);
        assert!(!verify_consistency(m, to, &sha256(b"another old head"), &head(to), &proof), "{query}");
        if let Some(last) = proof.last() {
            let mut bad = proof.clone();
            let at = bad.len() - 1;
            bad[at] = {
                let mut h = *last;
                h[0] ^= 0x80;
                h
            };
            assert!(!verify_consistency(m, to, &head(m), &head(to), &bad), "{query}");
            assert!(!verify_consistency(m, to, &head(m), &head(to), &proof[..at]), "{query}");
        }
    }
    for (path, status) in [
        ("inclusion?seq=0", StatusCode::NOT_FOUND),
        (&format!("inclusion?seq={}", n + 1), StatusCode::NOT_FOUND),
        ("inclusion?seq=5&tree_size=4", StatusCode::NOT_FOUND),
        ("consistency?from=0", StatusCode::BAD_REQUEST),
        ("consistency?from=5&to=4", StatusCode::BAD_REQUEST),
        (&format!("consistency?from=1&to={}", n + 1), StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(server.get(&format!("/v1/audit/proofs/{path}")).await.status, status, "{path}");
    }
}

// ---------------------------------------------------------------------------
// Redaction.

const ACCESS: &str = "ya29.a0AfH6SMBx-secret-access-token-0001";
const REFRESH: &str = "1//0gRefreshSecret-token-0002";
const NESTED: &str = "ya29.nested-secret-value-0003";
const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abc123def456";
const PASSWORD: &str = "hunter2secret";
const PEM_BODY: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCSECRETPEMBODY";
const DAPI: &str = "dapi0123456789abcdef0123456789abcdef";
// Issue 19, row 6: the key names and token formats that used to get through.
const KEYED: &str = "plain-token-under-a-token-key-0007";
const API_KEY: &str = "plain-api-key-under-apiKey-0008";
const COOKIE: &str = "sid=cookie-value-0009";
const STRIPE: &str = "sk_live_51H8SecretStripeKey0010";
const GITHUB: &str = "ghp_0123456789abcdefghijklmnopqrstuvwx11";
const SECRETS: &[&str] = &[
    ACCESS,
    REFRESH,
    NESTED,
    JWT,
    "eyJzdWIiOiIxMjM0In0",
    "abc123def456",
    PASSWORD,
    PEM_BODY,
    DAPI,
    KEYED,
    API_KEY,
    COOKIE,
    STRIPE,
    GITHUB,
];

fn assert_no_secret(what: &str, hay: &[u8]) {
    for secret in SECRETS {
        assert!(!hay.windows(secret.len()).any(|w| w == secret.as_bytes()), "`{secret}` in clear in {what}");
    }
}

fn assert_files_clean(server: &Server) {
    let db = server.database_path();
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", db.display());
        if let Ok(bytes) = std::fs::read(&path) {
            assert_no_secret(&path, &bytes);
        }
    }
}

#[tokio::test]
async fn secrets_never_reach_the_files_the_logs_or_exports() {
    let mut server = setup().await;
    let details = json!({
        "access_token": ACCESS,
        "Refresh_Token": REFRESH,
        "oauth": {"ACCESS_TOKEN": NESTED},
        "note": format!("signed in with {JWT} today"),
        "conn": format!("Server=x;UID=u;PWD={PASSWORD};"),
        "pem": format!("-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----"),
        "text": format!("databricks token {DAPI} used"),
        "token": KEYED,
        "apiKey": API_KEY,
        "x-api-key": API_KEY,
        "cookie": COOKIE,
        "billing": format!("charged with {STRIPE}"),
        "ci": format!("pushed with {GITHUB}"),
        "keep": "plain words stay",
    });
    let body = json!({"kind": "token.issued", "token_id": "tok-secretive", "owner": "eddie", "connection": "c_wh",
                      "role": "ANALYST", "expires_at": FUTURE, "details": details});
    let r = server.post("/v1/tokens/events", &body).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    // The caller's answer is not redacted: the token in clear, as stored.
    assert_eq!(r.json["token"]["token_id"], "tok-secretive");
    assert_eq!((&r.json["token"]["status"], &r.json["token"]["role"]), (&json!("active"), &json!("ANALYST")));
    let answer = resolve(&server, "eddie", "p_disabled", "c_wh", "notebook").await;
    assert_eq!(answer["credential"]["token_id"], "tok-secretive", "{answer}");

    let digest = server.audit_digest("tok-secretive").await;
    let records = server.audit_events("token=tok-secretive").await;
    assert_eq!(records.len(), 2, "the event and the resolution");
    let stored = &records[0]["details"];
    assert_eq!(records[0]["token_id"], digest);
    assert_eq!(stored["access_token"], server.audit_digest(ACCESS).await, "{stored}");
    assert_eq!(stored["Refresh_Token"], server.audit_digest(REFRESH).await, "{stored}");
    assert_eq!(stored["oauth"]["ACCESS_TOKEN"], server.audit_digest(NESTED).await, "{stored}");
    assert_eq!(stored["keep"], "plain words stay");
    let text = |k: &str| stored[k].as_str().unwrap_or_else(|| panic!("{k}: {stored}")).to_owned();
    assert!(text("pem").contains("[REDACTED]"), "{stored}");
    assert!(text("conn").contains(&format!("PWD={}", server.audit_digest(PASSWORD).await)), "{stored}");
    assert!(text("note").contains(&server.audit_digest(JWT).await), "{stored}");
    assert!(text("text").contains(&server.audit_digest(DAPI).await), "{stored}");
    assert_eq!(stored["token"], server.audit_digest(KEYED).await, "{stored}");
    assert_eq!(stored["apiKey"], server.audit_digest(API_KEY).await, "{stored}");
    assert_eq!(stored["x-api-key"], server.audit_digest(API_KEY).await, "{stored}");
    assert_eq!(stored["cookie"], server.audit_digest(COOKIE).await, "{stored}");
    assert!(text("billing").contains(&server.audit_digest(STRIPE).await), "{stored}");
    assert!(text("ci").contains(&server.audit_digest(GITHUB).await), "{stored}");

    let export = server.get("/v1/audit/export").await;
    assert_eq!(export.status, StatusCode::OK);
    let lines: Vec<Value> = export.text.lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines, server.audit_events("").await, "the export is the log, one record per line");
    assert_no_secret("GET /v1/audit/export", export.text.as_bytes());
    // Token ids are keyed digests in the log (the token store keeps them).
    assert!(!export.text.contains("tok-secretive"), "a clear token id in the export");
    assert_files_clean(&server);
    server.stop();
    assert_files_clean(&server);
    assert_no_secret("the server's log", server.logs().as_bytes());
    let (code, offline) = cli(&server, &server.database_path(), &["export"]);
    assert_eq!(code, 0);
    assert_eq!(offline, export.text, "the CLI exports the same lines");
    assert_no_secret("warrant audit export", offline.as_bytes());
}

/// A key file line `k2 <hex> from=N` bounds the retired key k1 to seqs
/// below N (issue 19, row 7). Whoever still holds k1 and can write to the
/// database appends a correctly linked, correctly MAC'd record after the
/// rotation; verification refuses it at its seq, naming the key's range.
#[tokio::test]
async fn a_record_signed_by_a_retired_key_after_its_successor_started_fails_verification() {
    let mut server = setup().await;
    event(&server, "token.issued", "tok-k1", "eddie", "c_wh", "ANALYST", FUTURE).await;
    let head = server.audit_events("").await.len() as u64;
    server.stop();
    let k1 = std::fs::read_to_string(server.audit_key_file()).unwrap();
    let k1 = k1.lines().find(|l| !l.trim().is_empty() && !l.starts_with('#')).unwrap().trim().to_owned();
    // Rotate: k2 signs from the next seq on.
    let k2 = format!("k2 {} from={}", "7e".repeat(32), head + 1);
    std::fs::write(server.audit_key_file(), format!("{k1}\n{k2}\n")).unwrap();
    server.start_again();
    event(&server, "token.revoked", "tok-k1", "eddie", "c_wh", "ANALYST", "").await;
    let after = server.audit_events("").await;
    assert_eq!(after.last().unwrap()["key_id"], "k2", "{:?}", after.last());
    server.stop();
    let (code, out) = cli(&server, &server.database_path(), &["verify"]);
    assert_eq!(code, 0, "the rotated log verifies: {out}");

    // The holder of k1 alone appends a record (a key creation, through the CLI).
    let forged = server.config_home().join("k1-only.key");
    std::fs::write(&forged, format!("{k1}\n")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("forged.db");
    copy_database(&server.database_path(), &db);
    let out = warrant_command(server.config_home())
        .args(["keys", "create", "--scope", "policy:admin", "--database-url"])
        .arg(format!("sqlite://{}", db.display()))
        .arg("--audit-key-file")
        .arg(&forged)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let seq = after.len() as u64 + 1;
    let (code, out) = cli(&server, &db, &["verify"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with(&format!("FAILED at seq {seq}: ")), "{out}");
    assert!(out.contains(&format!("key `k1` signs seq 1..{head}")), "{out}");
}
