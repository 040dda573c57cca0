//! `warrant diff OLD_DIR NEW_DIR`: what the new bundle would decide
//! differently over the live entity store (`warrant_engine::impact`), as
//! text for people or JSON for tools, with a gate for CI
//! (`--max-new-permits`).

use std::process::ExitCode;

use warrant_engine::audit::Record;
use warrant_engine::impact::{Compared, Impact, Replay};
use warrant_engine::{Bundle, Timestamp};

use crate::config::DiffArgs;
use crate::store::{MAX_REPLAY, Store, TimeWindow};

pub fn run(args: &DiffArgs) -> ExitCode {
    match compare(args) {
        Ok((impact, replay)) => {
            if args.json {
                let mut report = serde_json::to_value(&impact).unwrap_or_default();
                if let (Some(replay), Some(map)) = (&replay, report.as_object_mut()) {
                    map.insert("replay".into(), serde_json::to_value(replay).unwrap_or_default());
                }
                println!("{}", serde_json::to_string_pretty(&report).unwrap_or_default());
            } else {
                print!("{}", render(&impact));
                if let Some(replay) = &replay {
                    print!("{}", render_replay(replay));
                }
            }
            match args.max_new_permits {
                Some(max) if impact.newly_permitted > max => {
                    eprintln!(
                        "error: the change newly permits {} request(s), more than `--max-new-permits {max}`",
                        impact.newly_permitted
                    );
                    ExitCode::FAILURE
                }
                _ => ExitCode::SUCCESS,
            }
        }
        Err(why) => {
            eprintln!("error: {why}");
            ExitCode::from(2)
        }
    }
}

fn compare(args: &DiffArgs) -> Result<(Impact, Option<Replay>), String> {
    let load = |dir: &std::path::Path| {
        super::check::load(dir).map_err(|e| {
            let lines: Vec<String> = e.diagnostics().iter().map(|d| format!("  {d}")).collect();
            format!("the bundle in `{}` does not load:\n{}", dir.display(), lines.join("\n"))
        })
    };
    let (old, new) = (load(&args.old)?, load(&args.new)?);
    let window = TimeWindow { since: args.replay_since, until: args.replay_until };
    if let (Some(since), Some(until)) = (window.since, window.until)
        && since >= until
    {
        return Err(format!("`--replay-since` ({since}) must be before `--replay-until` ({until})"));
    }
    let (stored, records) = match (&args.database_url, &args.entities) {
        (_, Some(path)) => (super::eval::read_entities(path).map_err(|f| f.message().to_owned())?, Vec::new()),
        (Some(url), None) => read_store(url, replayed(args), &window)?,
        (None, None) => (Vec::new(), Vec::new()),
    };
    let sets = |bundle: &Bundle, which: &str| {
        bundle.entity_set(stored.clone()).map_err(|e| format!("the entities do not load under the {which} bundle: {e}"))
    };
    let (old_set, new_set) = (sets(&old, "old")?, sets(&new, "new")?);
    let impact = old.impact(&old_set, &new, &new_set, Timestamp::now(), args.examples);
    let replay = (replayed(args) > 0).then(|| old.replay(&old_set, &new, &new_set, &records, args.examples));
    Ok((impact, replay))
}

/// How many logged decisions to replay: `--replay`, or with only a time
/// window the most one dry run replays over HTTP.
fn replayed(args: &DiffArgs) -> usize {
    match (args.replay, args.replay_since.is_some() || args.replay_until.is_some()) {
        (Some(n), _) => n,
        (None, true) => MAX_REPLAY,
        (None, false) => 0,
    }
}

/// The stored entities, and the newest `decisions` decision records logged
/// within `window`.
fn read_store(
    url: &str,
    decisions: usize,
    window: &TimeWindow,
) -> Result<(Vec<serde_json::Value>, Vec<Record>), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    runtime.block_on(async {
        let store = Store::open_existing(url).await.map_err(|e| format!("cannot open `{url}`: {e}"))?;
        let entities = store.entities().await.map_err(|e| format!("cannot read the entities of `{url}`: {e}"))?;
        let records = store
            .newest_decisions(decisions, window)
            .await
            .map_err(|e| format!("cannot read the log of `{url}`: {e}"))?;
        Ok((entities, records))
    })
}

/// The replay's part of the report.
fn render_replay(replay: &Replay) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "replay: {} logged decisions asked again: {} newly permitted, {} newly denied ({} drifted: the bundle in force no longer gives the logged answer either); {} not replayable",
        replay.replayed, replay.newly_permitted, replay.newly_denied, replay.drifted, replay.not_replayable
    );
    for flip in &replay.examples {
        let verb = if flip.allowed { "may now" } else { "may no longer" };
        let drifted = if flip.drifted { " [drifted]" } else { "" };
        let _ = writeln!(
            out,
            "  seq {}: {} {verb} {} on {}, by {}{drifted}",
            flip.seq,
            flip.principal,
            flip.action,
            flip.resource,
            flip.by.join(", ")
        );
    }
    for n in &replay.not_replayable_examples {
        let _ = writeln!(out, "  seq {}: not replayable: {}", n.seq, n.reason);
    }
    out
}

/// The report for people: changed actions with their flips, what was not
/// covered, and the totals.
fn render(impact: &Impact) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let short = |ty: &str| ty.rsplit("::").next().unwrap_or(ty).to_owned();
    let mut unchanged = 0;
    for action in &impact.actions {
        if action.compared == Compared::Unchanged {
            unchanged += 1;
            continue;
        }
        let how = match action.compared {
            Compared::Everything => "every principal searched: the schema, entities.json or rules changed".to_owned(),
            _ => match action.changed_policies.len() {
                1 => "1 policy changed".to_owned(),
                n => format!("{n} policies changed"),
            },
        };
        let _ = writeln!(
            out,
            "{} ({} → {}): {} newly permitted, {} newly denied ({how}; {} principals, {} pairs decided)",
            action.action,
            short(&action.principal_type),
            short(&action.resource_type),
            action.newly_permitted,
            action.newly_denied,
            action.principals,
            action.decided,
        );
        for changed in &action.changed_policies {
            let _ =
                writeln!(out, "  {} {}", if changed.starts_with('+') { "added  " } else { "removed" }, &changed[1..]);
        }
        for flip in &action.examples {
            let by = if flip.by.is_empty() { "nothing".to_owned() } else { flip.by.join(", ") };
            let _ = if flip.allowed {
                writeln!(out, "  + {} may now {} on {}, permitted by {by}", flip.principal, flip.action, flip.resource)
            } else {
                writeln!(
                    out,
                    "  - {} may no longer {} on {}, denied by {by} (was permitted by {})",
                    flip.principal,
                    flip.action,
                    flip.resource,
                    flip.was.join(", ")
                )
            };
        }
        let shown = action.examples.len();
        let total = action.newly_permitted + action.newly_denied;
        if total > shown {
            let _ = writeln!(out, "  … and {} more", total - shown);
        }
        for p in &action.by_policy {
            let _ = writeln!(out, "  by {}: +{} -{}", p.policy, p.newly_permitted, p.newly_denied);
        }
    }
    if unchanged > 0 {
        let _ = writeln!(
            out,
            "{unchanged} action/type pairs unchanged (same policies, rules and entities: nothing to decide)"
        );
    }
    if !impact.not_covered.is_empty() {
        let _ = writeln!(out, "not covered:");
        for n in &impact.not_covered {
            let keys = if n.context_keys.is_empty() {
                String::new()
            } else {
                format!(" ({})", n.context_keys.iter().map(|k| format!("context.{k}")).collect::<Vec<_>>().join(", "))
            };
            let _ = writeln!(out, "  {}: {}{keys}", n.action, n.reason);
        }
    }
    let _ = writeln!(
        out,
        "{} newly permitted, {} newly denied; {} pairs decided at {}",
        impact.newly_permitted, impact.newly_denied, impact.decided, impact.at
    );
    out
}
