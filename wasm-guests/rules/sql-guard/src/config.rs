//! The rule's configuration (the manifest entry's `config`).

use serde::Deserialize;
use sqlparser::dialect::{Dialect, GenericDialect, dialect_from_str};

/// ```json
/// {"pii": {"tables": ["hr.salaries"], "columns": ["ssn", "hr.employees.birth_date"]},
///  "allowed_purposes": ["fraud_review"], "dialect": "snowflake"}
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub pii: Pii,
    /// `context.purpose` values under which PII may be read.
    #[serde(default)]
    pub allowed_purposes: Vec<String>,
    /// Actions whose `context.sql` is checked; others abstain.
    #[serde(default = "default_actions")]
    pub actions: Vec<String>,
    /// sqlparser's dialect name: `generic` (default), `snowflake`,
    /// `postgres`, `bigquery`, `databricks`, `mysql`, `mssql`, …
    #[serde(default)]
    pub dialect: SqlDialect,
}

fn default_actions() -> Vec<String> {
    vec!["run_query".to_owned()]
}

/// The PII-tagged names.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pii {
    /// `table`, `schema.table` or `db.schema.table`.
    #[serde(default)]
    pub tables: Vec<Name>,
    /// `column` (in any table), or `table.column` / `schema.table.column`: a
    /// qualified column also matches `SELECT *` from its table.
    #[serde(default)]
    pub columns: Vec<Name>,
}

/// A dotted name from the configuration, compared case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Name {
    text: String,
    /// Lowercase, never empty, no empty part.
    parts: Vec<String>,
}

impl Name {
    /// As configured (used in deny reasons).
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn parts(&self) -> &[String] {
        &self.parts
    }

    /// The qualifier (maybe empty) and the last part.
    pub fn split_last(&self) -> (&[String], &str) {
        match self.parts.split_last() {
            Some((last, qualifier)) => (qualifier, last),
            None => (&[], ""),
        }
    }
}

impl TryFrom<String> for Name {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let parts: Vec<String> = text.split('.').map(|p| p.trim().to_lowercase()).collect();
        if parts.iter().any(String::is_empty) {
            return Err(format!("`{text}` is not a dotted name"));
        }
        Ok(Self { text, parts })
    }
}

/// A SQL dialect sqlparser knows, by name.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct SqlDialect(String);

impl Default for SqlDialect {
    fn default() -> Self {
        Self("generic".to_owned())
    }
}

impl SqlDialect {
    pub fn dialect(&self) -> Box<dyn Dialect> {
        // INVARIANT: the name was checked by `try_from`.
        dialect_from_str(&self.0).unwrap_or_else(|| Box::new(GenericDialect))
    }
}

impl TryFrom<String> for SqlDialect {
    type Error = String;

    fn try_from(name: String) -> Result<Self, String> {
        match dialect_from_str(&name) {
            Some(_) => Ok(Self(name)),
            None => Err(format!("unknown SQL dialect `{name}`")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn example_config_parses() {
        let config: Config = serde_json::from_str(include_str!("../config.example.json")).unwrap();
        assert_eq!(config.actions, ["run_query"]);
        assert_eq!(config.pii.tables[0].parts(), ["hr", "salaries"]);
    }

    #[test]
    fn names_are_lowercase_dotted_parts() {
        let name = Name::try_from("HR.Employees.SSN".to_owned()).unwrap();
        assert_eq!(name.text(), "HR.Employees.SSN");
        assert_eq!(name.split_last(), (&["hr".to_owned(), "employees".to_owned()][..], "ssn"));
        assert!(Name::try_from(String::new()).is_err());
        assert!(Name::try_from("hr..t".to_owned()).is_err());
        assert!(Name::try_from("hr.".to_owned()).is_err());
    }

    #[test]
    fn bad_configs_are_rejected() {
        let parse = |v: serde_json::Value| serde_json::from_value::<Config>(v);
        assert!(parse(json!({})).is_err(), "pii is required");
        assert!(parse(json!({"pii": {}})).is_ok());
        assert!(parse(json!({"pii": {"tables": ["a..b"]}})).is_err());
        assert!(parse(json!({"pii": {}, "dialect": "cobol"})).is_err());
        assert!(parse(json!({"pii": {"colums": ["ssn"]}})).is_err(), "misspelt key");
        assert!(parse(json!({"pii": {}, "dialect": "Snowflake"})).is_ok());
    }
}
