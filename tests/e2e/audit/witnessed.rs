//! A log with a witness (docs/audit.md#witnesses): `warrant serve --witness`
//! submits each checkpoint to a real `warrant witness`, keeps its
//! cosignatures, and hands them out in checkpoints and proof files; an
//! auditor holding only public keys then catches a cut tail (asking the
//! witness, having kept nothing) and a history rewritten under the
//! operator's own keys (with a proof file kept earlier, and the witness
//! refuses to cosign it).

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sha2::{Digest as _, Sha256};

use super::{altered_copy, authorize, cli, populate};
use crate::credentials::{entities, setup_with_args};
use crate::server::{Server, warrant_command};
use crate::witness::Witness;

const ORIGIN: &str = "example.com/witnessed-e2e";
const WITNESS: &str = "witness.example/e2e";

fn log_key(server: &Server) -> String {
    let out = warrant_command(server.config_home()).args(["audit", "public-key"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A server publishing every 50 ms and submitting to a new witness that
/// follows it, with a quorum of one; the log's and the witness's keys.
async fn witnessed() -> (Server, Witness, String, String) {
    let mut server = setup_with_args(&["--log-origin", ORIGIN, "--checkpoint-interval", "50ms"]).await;
    let log_key = log_key(&server);
    let witness = Witness::start(&log_key);
    let witness_key = witness.vkey();
    server.stop();
    server.add_args(&["--witness", &format!("{}={witness_key}", witness.url()), "--witness-quorum", "1"]);
    server.start_again();
    (server, witness, log_key, witness_key)
}

/// The checkpoint `/log/checkpoint` serves once it covers `size` records:
/// with a quorum configured, only a cosigned one is served.
async fn witnessed_checkpoint(server: &Server, size: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = server.get("/log/checkpoint").await;
        if r.status == StatusCode::OK && r.text.lines().nth(1) == Some(&size.to_string()) {
            return r.text;
        }
        assert!(
            Instant::now() < deadline,
            "no witnessed checkpoint of {size}: {} {}\n{}",
            r.status,
            r.text,
            server.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The newest checkpoint the witness cosigned for the log, as it serves it.
async fn witness_checkpoint(witness: &Witness) -> String {
    let digest: String = Sha256::digest(ORIGIN.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    let r = witness.get(&format!("/{digest}/checkpoint")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.text
}

fn size_of(note: &str) -> u64 {
    note.lines().nth(1).and_then(|l| l.parse().ok()).unwrap()
}

#[tokio::test]
async fn cosignatures_travel_with_proofs_and_a_witness_catches_a_cut_tail() {
    let (mut server, witness, log_key, witness_key) = witnessed().await;
    populate(&server).await;
    for _ in 0..20 {
        authorize(&server, "eddie", "view_notebook", "p_disabled").await;
    }
    let n = server.audit_events("").await.len();
    let note = witnessed_checkpoint(&server, n).await;
    assert!(note.contains(&format!("\n\u{2014} {WITNESS} ")), "the served checkpoint carries the cosignature:\n{note}");

    // A proof file carries the cosignature, and checks with the two public
    // keys alone, on a machine with no database and no audit key.
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("5.tlog-proof");
    let out = warrant_command(server.config_home())
        .args(["audit", "prove", "--seq", "5", "--min-cosignatures", "1", "--database-url", server.database_url()])
        .arg("--out")
        .arg(&proof)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let nothing = tempfile::tempdir().unwrap();
    let verify_proof = |extra: &[&str]| {
        let out = warrant_command(nothing.path())
            .current_dir(nothing.path())
            .args(["audit", "verify-proof"])
            .arg(&proof)
            .args(["--log-key", &log_key])
            .args(extra)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = verify_proof(&["--witness-key", &witness_key]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("cosigned by {WITNESS} at ")), "{out}");
    let (code, out) = verify_proof(&["--witness-key", &witness_key, "--quorum", "2"]);
    assert_eq!(code, Some(1), "one cosignature is not a quorum of two: {out}");
    assert!(out.starts_with("FAILED") && out.contains("1 of 1"), "{out}");

    // The operator, holding every key, cuts the newest records and every
    // checkpoint, cosignature and tile: the chain alone verifies, but the
    // witness still holds the newest checkpoint it cosigned.
    let witnessed = size_of(&witness_checkpoint(&witness).await);
    assert!(witnessed >= n as u64, "{witnessed} < {n}");
    server.stop();
    let k = n - 3;
    let cut = format!(
        "DROP TRIGGER audit_records_no_delete; DELETE FROM audit_records WHERE seq > {k}; \
         DROP TRIGGER audit_checkpoints_no_delete; DELETE FROM audit_checkpoints; \
         DROP TRIGGER audit_log_checkpoints_no_delete; DELETE FROM audit_log_checkpoints; \
         DROP TRIGGER audit_log_cosignatures_no_delete; DELETE FROM audit_log_cosignatures; \
         DROP TRIGGER audit_tiles_no_delete; DELETE FROM audit_tiles;"
    );
    let db = altered_copy(&server, dir.path(), "cut", &cut);
    let (code, out) = cli(&server, &db, &["verify", "--log-key", &log_key]);
    assert_eq!(code, 0, "nothing left in the database shows the cut: {out}");
    let witness_arg = format!("{}={witness_key}", witness.url());
    let (code, out) = cli(&server, &db, &["verify", "--log-key", &log_key, "--witness", &witness_arg]);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with(&format!("FAILED at seq {}: ", k + 1)), "{out}");
    assert!(out.contains(&format!("covers {witnessed} records")), "names the witnessed size: {out}");
    // A witness named to vouch that cannot be asked fails the verification.
    let gone = format!("http://127.0.0.1:9={witness_key}");
    let out = warrant_command(server.config_home())
        .args(["audit", "verify", "--log-key", &log_key, "--witness", &gone, "--audit-key-file"])
        .arg(server.audit_key_file())
        .arg("--database-url")
        .arg(format!("sqlite://{}", db.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains(WITNESS), "{stderr}");
}

#[tokio::test]
async fn a_history_rewritten_under_the_operators_keys_is_refused_by_the_witness_and_caught_by_an_earlier_proof() {
    let (mut first, witness, log_key, witness_key) = witnessed().await;
    populate(&first).await;
    let n = first.audit_events("").await.len();
    witnessed_checkpoint(&first, n).await;
    let dir = tempfile::tempdir().unwrap();
    let proof = dir.path().join("10.tlog-proof");
    let out = warrant_command(first.config_home())
        .args(["audit", "prove", "--seq", "10", "--min-cosignatures", "1", "--database-url", first.database_url()])
        .arg("--out")
        .arg(&proof)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let witnessed = size_of(&witness_checkpoint(&witness).await);
    first.stop();

    // The same keys (audit, log) and flags write another history.
    let second = Server::start_with_keys_of(&first, &[] as &[&str]);
    second.put_entities(&entities()).await;
    for _ in 0..(n + 10) {
        authorize(&second, "nadia", "view_notebook", "p_disabled").await;
    }
    // The witness refuses it (its size, then the proof from it, does not
    // hold), and the log says so.
    second
        .wait_for_log(Duration::from_secs(20), |logs| {
            logs.contains("a witness refused the log's checkpoint") && logs.contains("\"status\":422")
        })
        .await;
    let metrics = second.get("/metrics").await.text;
    assert!(metrics.contains(&format!("reason=\"{WITNESS}: 422\"")), "{metrics}");
    assert_eq!(size_of(&witness_checkpoint(&witness).await), witnessed, "the witness kept the first history");
    let r = second.get("/log/checkpoint").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "nothing of the rewritten log is witnessed: {}", r.text);

    // The proof file kept from the first history still verifies on its own,
    // but its checkpoint is not in the second log, and neither is the
    // witness's.
    let out = warrant_command(second.config_home())
        .args(["audit", "verify-proof", proof.to_str().unwrap(), "--log-key", &log_key])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let text = std::fs::read_to_string(&proof).unwrap();
    let kept = dir.path().join("kept.note");
    std::fs::write(&kept, text.split_once("\n\n").unwrap().1).unwrap();
    let db = second.database_path();
    let signed = ["verify", "--signed-checkpoint", kept.to_str().unwrap(), "--log-key", &log_key];
    let (code, out) = cli(&second, &db, &signed);
    assert_eq!(code, 1, "{out}");
    assert!(out.starts_with("FAILED") && out.contains("signed checkpoint of"), "{out}");
    let witness_arg = format!("{}={witness_key}", witness.url());
    let (code, out) = cli(&second, &db, &["verify", "--log-key", &log_key, "--witness", &witness_arg]);
    assert_eq!(code, 1, "{out}");

    // A proof under the kept checkpoint: the first log gives one, the
    // second cannot.
    let prove = |server: &Server| {
        warrant_command(server.config_home())
            .args(["audit", "prove", "--seq", "3", "--checkpoint", kept.to_str().unwrap()])
            .args(["--database-url", server.database_url()])
            .output()
            .unwrap()
    };
    let out = prove(&first);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let again = dir.path().join("3.tlog-proof");
    std::fs::write(&again, &out.stdout).unwrap();
    let out = warrant_command(first.config_home())
        .args(["audit", "verify-proof", again.to_str().unwrap(), "--vkey", &log_key, "--witness-vkey", &witness_key])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let out = prove(&second);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not match the log's records"), "{out:?}");
}
