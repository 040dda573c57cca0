//! `sql-guard`: deny a query that reads a PII-tagged table or column unless
//! the request states an allowed purpose.
//!
//! Context keys read:
//! - `sql` (string): the statement(s) about to run. Absent or blank: abstain.
//! - `purpose` (string, optional): why the data is read.
//!
//! Verdicts: no PII read → allow; PII read with an allowed purpose → allow
//! with reason `<finding>;purpose:<purpose>` (for the audit record);
//! otherwise deny `pii_table:<name>`, `pii_column:<name>` or
//! `sql_dynamic_name`. SQL that does not tokenize → deny `invalid_sql`.
//! See [`analyze`] for how names are matched.

pub mod analyze;
pub mod config;

use warrant_rule_sdk::{Request, Rule, Verdict, export_rule, log};

pub use config::Config;

#[derive(Debug)]
pub struct SqlGuard;

impl Rule for SqlGuard {
    type Config = Config;

    fn evaluate(config: &Config, req: &Request) -> Verdict {
        if !req.action_in(&config.actions) {
            return Verdict::abstain();
        }
        let sql = match req.context_value("sql").map(|v| v.as_str()) {
            None => return Verdict::abstain(),
            Some(None) => return Verdict::deny("invalid_context:sql"),
            Some(Some(sql)) if sql.trim().is_empty() => return Verdict::abstain(),
            Some(Some(sql)) => sql,
        };
        let finding = match analyze::find_pii(sql, config.dialect.dialect().as_ref(), &config.pii) {
            Ok(None) => return Verdict::allow(),
            Ok(Some(finding)) => finding,
            Err(err) => {
                log(&format!("sql does not tokenize: {err}"));
                return Verdict::deny("invalid_sql");
            }
        };
        match req.context_str("purpose") {
            Some(purpose) if config.allowed_purposes.iter().any(|p| p == purpose) => {
                Verdict::allow().with_reason(format!("{};purpose:{purpose}", finding.reason()))
            }
            _ => Verdict::deny(finding.reason()),
        }
    }
}

export_rule!(SqlGuard);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use warrant_rule_sdk::testing::{request, take_logs};
    use warrant_rule_sdk::{EntityRef, INVALID_CONFIG, evaluate_json};

    fn config() -> Config {
        serde_json::from_str(include_str!("../config.example.json")).unwrap()
    }

    fn decide(context: Value) -> Verdict {
        SqlGuard::evaluate(&config(), &request("run_query", context))
    }

    #[test]
    fn query_without_pii_is_allowed() {
        assert_eq!(decide(json!({"sql": "SELECT id, total FROM sales.orders"})), Verdict::allow());
    }

    #[test]
    fn pii_without_purpose_is_denied() {
        assert_eq!(decide(json!({"sql": "SELECT * FROM hr.salaries"})), Verdict::deny("pii_table:hr.salaries"));
        assert_eq!(decide(json!({"sql": "SELECT ssn FROM people"})), Verdict::deny("pii_column:ssn"));
    }

    #[test]
    fn pii_with_an_allowed_purpose_is_allowed_and_says_so() {
        let verdict = decide(json!({"sql": "SELECT ssn FROM people", "purpose": "fraud_review"}));
        assert_eq!(verdict, Verdict::allow().with_reason("pii_column:ssn;purpose:fraud_review"));
    }

    #[test]
    fn pii_with_another_purpose_is_denied() {
        let verdict = decide(json!({"sql": "SELECT email FROM people", "purpose": "marketing"}));
        assert_eq!(verdict, Verdict::deny("pii_column:email"));
        // Purposes match exactly.
        let verdict = decide(json!({"sql": "SELECT email FROM people", "purpose": "FRAUD_REVIEW"}));
        assert_eq!(verdict, Verdict::deny("pii_column:email"));
    }

    #[test]
    fn no_sql_abstains() {
        assert_eq!(decide(json!({})), Verdict::abstain());
        assert_eq!(decide(json!({"sql": null})), Verdict::abstain());
        assert_eq!(decide(json!({"sql": "  \n"})), Verdict::abstain());
    }

    #[test]
    fn malformed_sql_fails_closed() {
        take_logs();
        assert_eq!(decide(json!({"sql": 42})), Verdict::deny("invalid_context:sql"));
        assert_eq!(decide(json!({"sql": "SELECT 'unterminated FROM people"})), Verdict::deny("invalid_sql"));
        assert_eq!(take_logs().len(), 1);
    }

    #[test]
    fn other_actions_abstain() {
        let req = request("use_token", json!({"sql": "SELECT ssn FROM people"}));
        assert_eq!(SqlGuard::evaluate(&config(), &req), Verdict::abstain());
    }

    #[test]
    fn dialect_is_configurable() {
        let cfg: Config = serde_json::from_value(json!({"pii": {"columns": ["ssn"]}, "dialect": "mssql"})).unwrap();
        let req = request("run_query", json!({"sql": "SELECT [ssn] FROM people"}));
        assert_eq!(SqlGuard::evaluate(&cfg, &req), Verdict::deny("pii_column:ssn"));
    }

    #[test]
    fn bad_config_fails_closed() {
        let verdict = evaluate_json::<SqlGuard>(
            r#"{"pii": {"tables": ["hr..salaries"]}}"#,
            EntityRef::new("User", "u1"),
            EntityRef::new("Action", "run_query"),
            EntityRef::new("Connection", "c1"),
            r#"{"sql": "SELECT 1"}"#,
        );
        assert_eq!(verdict, Verdict::deny(INVALID_CONFIG));
    }
}
