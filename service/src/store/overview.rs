//! The grouped counts behind the auditor's overview (the folding is the
//! engine's, `audit/overview.rs`): one read over a time window through the
//! `ts` index, and the `details` of decisions in which a rule failed.

use warrant_engine::Timestamp;
use warrant_engine::audit::overview::{Bucket, Group};

use super::error::{StoreError, u64_of};
use super::open::Store;

/// A row of the grouped read, as the database returns it.
type Row = (String, String, Option<String>, Option<String>, Option<String>, i64, i64);

/// Marks a decision whose details hold a failed rule verdict: stored
/// details are canonical JSON (RFC 8785: no spaces), so the pair reads
/// exactly this way.
const RULE_ERROR: &str = "%\"verdict\":\"error\"%";

/// The grouped read with a bucket prefix of `$len` characters (SQL text
/// must be static: one statement per bucket).
macro_rules! grouped {
    ($len:literal) => {
        concat!(
            "SELECT substr(ts, 1, ",
            $len,
            "), kind, decision, connection, \
                    CASE WHEN decision = 'deny' THEN reasons END, \
                    CAST(CASE WHEN kind = 'decision' AND details LIKE $3 THEN 1 ELSE 0 END AS BIGINT), \
                    CAST(count(*) AS BIGINT) \
             FROM audit_records WHERE ts >= $1 AND ts < $2 \
             GROUP BY 1, 2, 3, 4, 5, 6"
        )
    };
}

impl Store {
    /// Records stamped in `since..until`, counted per bucket, kind,
    /// decision, connection, deny reasons and rule failure.
    pub async fn audit_overview(
        &self,
        since: &Timestamp,
        until: &Timestamp,
        bucket: Bucket,
    ) -> Result<Vec<Group>, StoreError> {
        let sql = match bucket {
            Bucket::Minute => grouped!(16),
            Bucket::Hour => grouped!(13),
            Bucket::Day => grouped!(10),
        };
        debug_assert!(sql.contains(&format!("substr(ts, 1, {})", bucket.prefix_len())));
        let rows: Vec<Row> = on_backend!(self, b => {
            sqlx::query_as(sql)
                .bind(since.to_string())
                .bind(until.to_string())
                .bind(RULE_ERROR)
                .fetch_all(b.reader())
                .await?
        });
        rows.into_iter()
            .map(|(bucket, kind, decision, connection, deny_reasons, rule_error, count)| {
                Ok(Group {
                    bucket,
                    kind,
                    decision,
                    connection,
                    deny_reasons,
                    rule_error: rule_error != 0,
                    count: u64_of(count, "count")?,
                })
            })
            .collect()
    }

    /// The `details` of at most `limit` decisions stamped in `since..until`
    /// in which a rule failed, oldest first.
    pub async fn audit_rule_failures(
        &self,
        since: &Timestamp,
        until: &Timestamp,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let details: Vec<String> = on_backend!(self, b => {
            sqlx::query_scalar(
                "SELECT details FROM audit_records \
                 WHERE ts >= $1 AND ts < $2 AND kind = 'decision' AND details LIKE $3 ORDER BY ts LIMIT $4",
            )
            .bind(since.to_string())
            .bind(until.to_string())
            .bind(RULE_ERROR)
            .bind(i64::from(limit))
            .fetch_all(b.reader())
            .await?
        });
        Ok(details)
    }
}
