//! Which configured PII tables and columns a SQL text reads.
//!
//! Two passes, both by `sqlparser`:
//! - the tokenizer (always): identifiers, quoted or not, outside string
//!   literals and comments. Every identifier that names a PII column counts,
//!   except the alias right after `AS`; a fully qualified PII table name
//!   anywhere counts too.
//! - the parser (when the SQL parses in the dialect): the relations the
//!   statements read (`FROM`, `JOIN`, `INSERT … SELECT`, CTEs, subqueries,
//!   `TABLE t`), and whether a projection uses `*` or `t.*`.
//!
//! When the SQL does not parse (a dialect feature sqlparser lacks), every
//! identifier chain counts as a possible table and any `*` as a wildcard:
//! the guard errs towards denying, never towards reading PII.
//!
//! Names compare case-insensitively, quoted or not, and right-aligned: a
//! query's `salaries` or `db.hr.salaries` refers to the configured
//! `hr.salaries` (an unqualified name may resolve to any schema), `x.salaries`
//! does not.

use std::ops::ControlFlow;

use sqlparser::ast::{ObjectName, ObjectNamePart, Query, SelectItem, SetExpr, Visit, Visitor};
use sqlparser::dialect::Dialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer, TokenizerError};

use crate::config::Pii;

/// A PII table or column the SQL reads, by its configured name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    Table(String),
    Column(String),
    /// A relation named by an expression (`IDENTIFIER(:name)`), which the
    /// guard cannot resolve.
    DynamicName,
}

impl Finding {
    /// The deny reason: `pii_table:<name>`, `pii_column:<name>`,
    /// `sql_dynamic_name`.
    pub fn reason(&self) -> String {
        match self {
            Self::Table(name) => format!("pii_table:{name}"),
            Self::Column(name) => format!("pii_column:{name}"),
            Self::DynamicName => "sql_dynamic_name".to_owned(),
        }
    }
}

/// The first configured PII table (in configuration order), else the first
/// PII column, that `sql` reads.
///
/// # Errors
/// When `sql` does not even tokenize (an unterminated string or comment).
pub fn find_pii(sql: &str, dialect: &dyn Dialect, pii: &Pii) -> Result<Option<Finding>, TokenizerError> {
    let scan = Scan::new(sql, dialect)?;
    if scan.dynamic_name {
        return Ok(Some(Finding::DynamicName));
    }
    if let Some(table) = pii.tables.iter().find(|t| scan.reads_table(t.parts())) {
        return Ok(Some(Finding::Table(table.text().to_owned())));
    }
    let column = pii.columns.iter().find(|c| {
        let (table, column) = c.split_last();
        if table.is_empty() {
            scan.mentions(column)
        } else {
            scan.reads_table(table) && (scan.wildcard || scan.mentions(column))
        }
    });
    Ok(column.map(|c| Finding::Column(c.text().to_owned())))
}

/// What one SQL text refers to. Names are lowercased.
#[derive(Debug, Default)]
struct Scan {
    /// Identifiers, except aliases right after `AS`.
    words: Vec<String>,
    /// Dotted identifier chains (`hr . "Salaries"` → `[hr, salaries]`).
    chains: Vec<Vec<String>>,
    /// Relations from the parsed statements; `None` when parsing failed.
    relations: Option<Vec<Vec<String>>>,
    wildcard: bool,
    dynamic_name: bool,
}

impl Scan {
    fn new(sql: &str, dialect: &dyn Dialect) -> Result<Self, TokenizerError> {
        let tokens = Tokenizer::new(dialect, sql).tokenize()?;
        let mut scan = Self::default();
        scan.lex(&tokens);
        if let Ok(statements) = Parser::parse_sql(dialect, sql) {
            let mut visitor = Relations::default();
            // Relations never breaks.
            let _ = statements.visit(&mut visitor);
            scan.wildcard = visitor.wildcard;
            scan.dynamic_name = visitor.dynamic_name;
            scan.relations = Some(visitor.names);
        }
        Ok(scan)
    }

    fn lex(&mut self, tokens: &[Token]) {
        let mut chain: Vec<String> = Vec::new();
        let mut after_as = false;
        let mut after_period = false;
        for token in tokens {
            if matches!(token, Token::Whitespace(_)) {
                continue;
            }
            let was_as = std::mem::take(&mut after_as);
            let was_period = std::mem::replace(&mut after_period, matches!(token, Token::Period));
            match token {
                Token::Word(w) if w.quote_style.is_none() && w.keyword == Keyword::AS => {
                    self.end_chain(&mut chain);
                    after_as = true;
                }
                // The alias being defined.
                Token::Word(_) if was_as => self.end_chain(&mut chain),
                Token::Word(w) => {
                    if !was_period {
                        self.end_chain(&mut chain);
                    }
                    // A quoted `"hr.salaries"` may be one name or two,
                    // depending on the dialect: take it as two.
                    for part in w.value.split('.') {
                        let part = part.to_lowercase();
                        self.words.push(part.clone());
                        chain.push(part);
                    }
                }
                Token::Period => {}
                Token::Mul => {
                    self.wildcard = true;
                    self.end_chain(&mut chain);
                }
                _ => self.end_chain(&mut chain),
            }
        }
        self.end_chain(&mut chain);
    }

    fn end_chain(&mut self, chain: &mut Vec<String>) {
        if !chain.is_empty() {
            self.chains.push(std::mem::take(chain));
        }
    }

    /// Whether an identifier names `column` (lowercase).
    fn mentions(&self, column: &str) -> bool {
        self.words.iter().any(|w| w == column)
    }

    fn reads_table(&self, parts: &[String]) -> bool {
        if parts.is_empty() {
            return false;
        }
        // A fully qualified name anywhere, parsed or not.
        if self.chains.iter().any(|chain| chain.windows(parts.len()).any(|w| w == parts)) {
            return true;
        }
        match &self.relations {
            Some(relations) => relations.iter().any(|r| refers_to(r, parts)),
            // Unparsed: any chain may be a table.
            None => self.chains.iter().any(|c| refers_to(c, parts)),
        }
    }
}

/// Whether `name` as written in a query may denote `configured`: their common
/// trailing parts agree.
fn refers_to(name: &[String], configured: &[String]) -> bool {
    !name.is_empty() && name.iter().rev().zip(configured.iter().rev()).all(|(a, b)| a == b)
}

/// Collects the relations a statement reads and whether a projection is `*`.
#[derive(Debug, Default)]
struct Relations {
    names: Vec<Vec<String>>,
    wildcard: bool,
    dynamic_name: bool,
}

impl Relations {
    fn set_expr(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Select(select)
                if select
                    .projection
                    .iter()
                    .any(|item| matches!(item, SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..))) =>
            {
                self.wildcard = true;
            }
            // `TABLE hr.salaries` names its relation by strings, which the
            // relation visitor does not see.
            SetExpr::Table(table) => {
                let parts = [&table.schema_name, &table.table_name];
                let name: Vec<String> = parts.into_iter().flatten().map(|p| p.to_lowercase()).collect();
                if !name.is_empty() {
                    self.names.push(name);
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.set_expr(left);
                self.set_expr(right);
            }
            // Nested queries and DML bodies are visited on their own.
            _ => {}
        }
    }
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let mut name = Vec::with_capacity(relation.0.len());
        for part in &relation.0 {
            match part {
                ObjectNamePart::Identifier(ident) => name.push(ident.value.to_lowercase()),
                ObjectNamePart::Function(_) => self.dynamic_name = true,
            }
        }
        self.names.push(name);
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.set_expr(&query.body);
        ControlFlow::Continue(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::dialect::{GenericDialect, dialect_from_str};

    fn pii() -> Pii {
        serde_json::from_value(serde_json::json!({
            "tables": ["hr.salaries"],
            "columns": ["ssn", "email", "hr.employees.birth_date"],
        }))
        .unwrap()
    }

    fn find(sql: &str) -> Option<String> {
        find_pii(sql, &GenericDialect, &pii()).unwrap().map(|f| f.reason())
    }

    fn find_in(dialect: &str, sql: &str) -> Option<String> {
        let dialect = dialect_from_str(dialect).unwrap();
        find_pii(sql, dialect.as_ref(), &pii()).unwrap().map(|f| f.reason())
    }

    const SALARIES: Option<&str> = Some("pii_table:hr.salaries");
    const SSN: Option<&str> = Some("pii_column:ssn");
    const BIRTH_DATE: Option<&str> = Some("pii_column:hr.employees.birth_date");

    #[test]
    fn clean_queries_find_nothing() {
        assert_eq!(find("SELECT id, name FROM hr.employees WHERE dept = 'eng'"), None);
        assert_eq!(find("select count(*) from sales.orders"), None);
        assert_eq!(find("SELECT 1"), None);
        assert_eq!(find("-- only a comment"), None);
    }

    #[test]
    fn pii_columns_anywhere_in_the_query() {
        assert_eq!(find("SELECT ssn FROM people").as_deref(), SSN);
        assert_eq!(find("SELECT p.SSN FROM people p").as_deref(), SSN);
        assert_eq!(find("SELECT id FROM people WHERE ssn = '1'").as_deref(), SSN);
        assert_eq!(find("SELECT id FROM people ORDER BY email").as_deref(), Some("pii_column:email"));
        assert_eq!(find("SELECT count(DISTINCT ssn) FROM people").as_deref(), SSN);
        assert_eq!(find("SELECT * FROM a JOIN b USING (ssn)").as_deref(), SSN);
        assert_eq!(find("SELECT x FROM (SELECT ssn AS x FROM people) t").as_deref(), SSN);
        assert_eq!(find("WITH t AS (SELECT ssn FROM people) SELECT 1 FROM t").as_deref(), SSN);
    }

    #[test]
    fn quoted_identifiers_match_case_insensitively() {
        assert_eq!(find(r#"SELECT "SSN" FROM people"#).as_deref(), SSN);
        assert_eq!(find("SELECT `Ssn` FROM people").as_deref(), SSN);
        assert_eq!(find(r#"SELECT id FROM "HR"."Salaries""#).as_deref(), SALARIES);
        assert_eq!(find_in("mssql", "SELECT [ssn] FROM people").as_deref(), SSN);
        assert_eq!(find_in("bigquery", "SELECT id FROM `hr.salaries`").as_deref(), SALARIES);
    }

    #[test]
    fn strings_and_comments_do_not_count() {
        assert_eq!(find("SELECT 'ssn', 'hr.salaries' FROM people"), None);
        assert_eq!(find("SELECT id FROM people -- ssn\n/* FROM hr.salaries */"), None);
        assert_eq!(find("SELECT id FROM people WHERE note = 'it''s the ssn'"), None);
        assert_eq!(find_in("postgres", "SELECT $$ssn$$, E'email' FROM people"), None);
        // A name that only contains a PII column name is another name.
        assert_eq!(find("SELECT ssn_hash, email_domain FROM people"), None);
    }

    #[test]
    fn aliases_named_like_pii_do_not_count() {
        assert_eq!(find("SELECT id AS ssn FROM people"), None);
        assert_eq!(find("SELECT id AS \"Email\" FROM people"), None);
    }

    #[test]
    fn pii_tables_by_any_qualification() {
        assert_eq!(find("SELECT amount FROM hr.salaries").as_deref(), SALARIES);
        assert_eq!(find("SELECT * FROM HR.SALARIES").as_deref(), SALARIES);
        assert_eq!(find("SELECT amount FROM warehouse.hr.salaries").as_deref(), SALARIES);
        assert_eq!(find("SELECT amount FROM salaries").as_deref(), SALARIES, "may resolve to hr.salaries");
        assert_eq!(find("SELECT amount FROM finance.salaries"), None);
        assert_eq!(find("SELECT amount FROM hr . salaries").as_deref(), SALARIES);
    }

    #[test]
    fn pii_tables_in_every_position() {
        for sql in [
            "SELECT e.id FROM hr.employees e JOIN hr.salaries s ON s.id = e.id",
            "SELECT id FROM people WHERE id IN (SELECT id FROM hr.salaries)",
            "WITH s AS (SELECT * FROM hr.salaries) SELECT count(*) FROM s",
            "SELECT id FROM people UNION SELECT id FROM hr.salaries",
            "INSERT INTO tmp.copy SELECT * FROM hr.salaries",
            "TABLE hr.salaries",
            "TABLE salaries",
            "SELECT 1; SELECT amount FROM hr.salaries",
        ] {
            assert_eq!(find(sql).as_deref(), SALARIES, "{sql}");
        }
    }

    #[test]
    fn a_column_that_shares_the_table_name_is_not_the_table() {
        assert_eq!(find("SELECT salaries FROM budget.lines"), None);
    }

    #[test]
    fn qualified_columns_need_their_table_and_catch_star() {
        assert_eq!(find("SELECT * FROM hr.employees").as_deref(), BIRTH_DATE);
        assert_eq!(find("SELECT e.* FROM hr.employees e").as_deref(), BIRTH_DATE);
        assert_eq!(find("SELECT birth_date FROM hr.employees").as_deref(), BIRTH_DATE);
        assert_eq!(find("SELECT id, name FROM hr.employees"), None);
        assert_eq!(find("SELECT count(*) FROM hr.employees"), None, "count(*) reads no column");
        assert_eq!(find("SELECT birth_date FROM hr.contractors"), None);
        assert_eq!(find("SELECT * FROM hr.contractors"), None);
    }

    #[test]
    fn unparsable_sql_is_scanned_conservatively() {
        // Not SQL sqlparser parses, but the tokens still name the table.
        assert_eq!(find("SELEKT amount FROM hr.salaries").as_deref(), SALARIES);
        assert_eq!(find("FROB salaries").as_deref(), SALARIES);
        assert_eq!(find("FROB * employees").as_deref(), BIRTH_DATE);
        assert_eq!(find("FROB ssn").as_deref(), SSN);
        assert_eq!(find("FROB nothing here"), None);
    }

    #[test]
    fn dynamic_relation_names_are_reported() {
        assert_eq!(
            find_in("snowflake", "SELECT * FROM IDENTIFIER('hr.sal' || 'aries')").as_deref(),
            Some("sql_dynamic_name")
        );
    }

    #[test]
    fn unterminated_literals_are_errors() {
        assert!(find_pii("SELECT 'ssn FROM people", &GenericDialect, &pii()).is_err());
        assert!(find_pii("SELECT id /* FROM people", &GenericDialect, &pii()).is_err());
    }
}
