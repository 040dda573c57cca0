//! `warrant audit verify` and `warrant audit export`: offline, from the
//! database and the key file — no running service needed.

use std::io::Write as _;
use std::process::ExitCode;

use indicatif::{ProgressBar, ProgressStyle};
use warrant_engine::audit::Checkpoint;

use crate::audit::verify;
use crate::config::{AuditCommand, AuditLogArgs};
use crate::keys::Keyring;
use crate::store::Store;

/// Records per read while exporting.
const CHUNK: u32 = 10_000;

pub fn run(command: AuditCommand) -> ExitCode {
    // Two workers: verification joins runs of records in order while its
    // scan threads (blocking, one per core) read and check the next ones.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => return fail(&format!("cannot start the runtime: {e}")),
    };
    match command {
        AuditCommand::Verify { log, from, to, checkpoint } => runtime.block_on(run_verify(log, from, to, checkpoint)),
        AuditCommand::Export { log, from, to, out } => runtime.block_on(run_export(log, from, to, out)),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

async fn open(log: &AuditLogArgs) -> Result<(Store, Keyring), String> {
    let keys = Keyring::load(log.audit_key_file.as_deref()).map_err(|e| e.to_string())?;
    let store = Store::open_existing(&log.database_url)
        .await
        .map_err(|e| format!("cannot open `{}`: {e}", log.database_url))?;
    Ok((store, keys))
}

async fn run_verify(log: AuditLogArgs, from: u64, to: Option<u64>, files: Vec<std::path::PathBuf>) -> ExitCode {
    let (store, keys) = match open(&log).await {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let mut kept = Vec::new();
    for path in &files {
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str::<Checkpoint>(&t).map_err(|e| e.to_string()));
        match parsed {
            Ok(c) => kept.push(c),
            Err(e) => return fail(&format!("checkpoint `{}`: {e}", path.display())),
        }
    }
    let total = store.audit_count().await.unwrap_or(0);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{spinner} verifying {pos}/{len} records [{bar:30}] {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let report = verify::verify(&store, &keys, from, to, &kept, |n| bar.set_position(n)).await;
    bar.finish_and_clear();
    match report {
        Err(e) => fail(&e.to_string()),
        Ok(r) if r.ok => {
            println!(
                "ok: records {}..={} ({}) verify; {} checkpoint(s) hold",
                r.from, r.to, r.records, r.checkpoints_checked
            );
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "FAILED at seq {}: {}",
                r.first_bad_seq.unwrap_or_default(),
                r.reason.as_deref().unwrap_or("unknown")
            );
            ExitCode::FAILURE
        }
    }
}

async fn run_export(log: AuditLogArgs, from: u64, to: Option<u64>, out: Option<std::path::PathBuf>) -> ExitCode {
    let (store, _keys) = match open(&log).await {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let mut sink: Box<dyn std::io::Write> = match &out {
        Some(path) => match std::fs::File::create(path) {
            Ok(f) => Box::new(std::io::BufWriter::new(f)),
            Err(e) => return fail(&format!("cannot write `{}`: {e}", path.display())),
        },
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let to = to.unwrap_or(u64::MAX >> 11);
    let mut next = from.max(1);
    let mut written = 0u64;
    while next <= to {
        let chunk = match store.audit_range(next, to, CHUNK).await {
            Ok(c) => c,
            Err(e) => return fail(&e.to_string()),
        };
        let Some(last) = chunk.last().map(|r| r.seq) else { break };
        for record in &chunk {
            let line = serde_json::to_string(record).unwrap_or_default();
            if writeln!(sink, "{line}").is_err() {
                return fail("cannot write the export");
            }
            written += 1;
        }
        next = last + 1;
    }
    if sink.flush().is_err() {
        return fail("cannot write the export");
    }
    if out.is_some() {
        eprintln!("exported {written} records");
    }
    ExitCode::SUCCESS
}
