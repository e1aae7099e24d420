//! The CRM warehouse probes' view of a database: a read-only session from the checkers' one
//! SQL layer ([`funnelgate_checker_sdk::db`]: sqlx pools, read-only transactions, the probe's
//! statement timeout, messages that name the target and never credentials), and the few SQL
//! dialect differences the warehouse probes need (identifier quoting, timestamp comparison,
//! text casts, bind parameter markers).

use funnelgate_checker_sdk::db::{Conn, DbPools, Session, SessionOptions, Target};
use funnelgate_checker_sdk::{ProbeContext, ProbeError};
use sqlx::{AssertSqlSafe, Row};

use crate::time::Utc;

pub use funnelgate_checker_sdk::db::Backend;

/// A `url` param: a known scheme, no password (that belongs in the secret).
pub fn check_url_param(u: &str) -> Result<(), ProbeError> {
    funnelgate_checker_sdk::db::check_url_param(u).map_err(ProbeError::params)
}

/// An open, read-only session (timestamps in UTC).
pub struct Db {
    session: Session,
    /// `postgres db:5432/crm` — for messages.
    pub label: String,
    /// The dialect.
    pub backend: Backend,
}

/// Where the connection comes from: `url` (the secret, if named, is its password), `sqlite_path`,
/// or the probe's secret holding the whole URL. Sessions come from `pools`.
pub async fn connect(
    pools: &DbPools,
    ctx: &ProbeContext,
    url: Option<&str>,
    sqlite_path: Option<&str>,
) -> Result<Db, ProbeError> {
    let target = Target::resolve(ctx, url, sqlite_path)?;
    let session = pools
        .open(&target, ctx.timeout(), SessionOptions { utc: true })
        .await?;
    Ok(Db {
        label: session.label().to_string(),
        backend: session.backend(),
        session,
    })
}

/// A statement with its string parameters, built for one dialect.
#[derive(Clone, Debug, Default)]
pub struct Sql {
    /// The statement text.
    pub text: String,
    /// Bound string parameters, in order.
    pub binds: Vec<String>,
}

/// The SQL differences between the three databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dialect(pub Backend);

impl Dialect {
    /// Quote a (possibly schema-qualified, already validated) identifier.
    pub fn ident(&self, name: &str) -> String {
        let q = if self.0 == Backend::MySql { '`' } else { '"' };
        name.split('.')
            .map(|p| format!("{q}{p}{q}"))
            .collect::<Vec<_>>()
            .join(".")
    }

    /// An expression comparable with [`Dialect::ts_lit`] values.
    pub fn ts(&self, expr: &str) -> String {
        match self.0 {
            Backend::Sqlite => format!("julianday({expr})"),
            _ => expr.to_string(),
        }
    }

    /// A UTC instant as a literal comparable with [`Dialect::ts`] expressions.
    pub fn ts_lit(&self, t: Utc) -> String {
        let s = t.sql();
        match self.0 {
            Backend::Postgres => format!("CAST('{s}+00' AS TIMESTAMPTZ)"),
            Backend::MySql => format!("CAST('{s}' AS DATETIME(3))"),
            Backend::Sqlite => format!("julianday('{s}')"),
        }
    }

    /// An expression cast to text (decoded as a string whatever the column type).
    pub fn text(&self, expr: &str) -> String {
        match self.0 {
            Backend::MySql => format!("CAST({expr} AS CHAR)"),
            _ => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// The `n`th (1-based) bind parameter marker (`$n` or `?`).
    pub fn bind_param(&self, n: usize) -> String {
        match self.0 {
            Backend::Postgres => format!("${n}"),
            _ => "?".to_string(),
        }
    }

    /// `expr IN (…)` over bound strings, appending the binds; `FALSE`-equivalent when empty.
    pub fn in_list(&self, expr: &str, values: &[String], binds: &mut Vec<String>) -> String {
        if values.is_empty() {
            return "1 = 0".to_string();
        }
        let ph: Vec<String> = values
            .iter()
            .map(|v| {
                binds.push(v.clone());
                self.bind_param(binds.len())
            })
            .collect();
        format!("{expr} IN ({})", ph.join(", "))
    }
}

impl Db {
    /// This session's dialect.
    pub fn dialect(&self) -> Dialect {
        Dialect(self.backend)
    }

    fn err(&self, e: sqlx::Error) -> ProbeError {
        self.session.error(e)
    }

    /// Run a statement returning one row of integer counts.
    pub async fn counts(&mut self, q: &Sql) -> Result<Vec<i64>, ProbeError> {
        let rows = self.rows_raw(q, RowKind::Int).await?;
        let row = rows.into_iter().next().ok_or_else(|| {
            ProbeError::permanent(format!("{}: a count query returned no row", self.label))
        })?;
        row.into_iter()
            .map(|c| match c {
                Cell::Int(i) => Ok(i.unwrap_or(0)),
                Cell::Text(_) => Err(ProbeError::permanent(format!(
                    "{}: expected a count",
                    self.label
                ))),
            })
            .collect()
    }

    /// Run a statement whose columns are all text (see [`Dialect::text`]).
    pub async fn texts(&mut self, q: &Sql) -> Result<Vec<Vec<Option<String>>>, ProbeError> {
        let rows = self.rows_raw(q, RowKind::Text).await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                r.into_iter()
                    .map(|c| match c {
                        Cell::Text(t) => t,
                        Cell::Int(i) => i.map(|i| i.to_string()),
                    })
                    .collect()
            })
            .collect())
    }

    /// Probe whether a statement runs, telling "no such table/column" apart from other failures.
    pub async fn exists(&mut self, q: &Sql) -> Result<bool, ProbeError> {
        self.session.runs(&q.text).await
    }

    async fn rows_raw(&mut self, q: &Sql, kind: RowKind) -> Result<Vec<Vec<Cell>>, ProbeError> {
        tracing::debug!(target_db = %self.label, sql = %q.text, "warehouse query");
        let label = self.label.clone();
        macro_rules! run {
            ($conn:expr) => {{
                let mut query = sqlx::query(AssertSqlSafe(q.text.clone()));
                for b in &q.binds {
                    query = query.bind(b.clone());
                }
                match query.fetch_all($conn).await {
                    Ok(rows) => {
                        let mut out = Vec::with_capacity(rows.len());
                        for row in rows {
                            let mut cells = Vec::with_capacity(row.len());
                            for i in 0..row.len() {
                                let cell = match kind {
                                    RowKind::Int => Cell::Int(
                                        row.try_get::<Option<i64>, _>(i).map_err(|e| {
                                            ProbeError::permanent(format!(
                                                "{label}: column {i}: {e}"
                                            ))
                                        })?,
                                    ),
                                    RowKind::Text => Cell::Text(
                                        row.try_get::<Option<String>, _>(i).map_err(|e| {
                                            ProbeError::permanent(format!(
                                                "{label}: column {i}: {e}"
                                            ))
                                        })?,
                                    ),
                                };
                                cells.push(cell);
                            }
                            out.push(cells);
                        }
                        Ok(out)
                    }
                    Err(e) => Err(e),
                }
            }};
        }
        let r = match self.session.conn() {
            Conn::Postgres(c) => run!(c),
            Conn::MySql(c) => run!(c),
            Conn::Sqlite(c) => run!(c),
        };
        r.map_err(|e| self.err(e))
    }

    /// Close the session (rolled back: nothing was written).
    pub async fn close(self) {
        self.session.close().await;
    }
}

#[derive(Clone, Copy)]
enum RowKind {
    Int,
    Text,
}

enum Cell {
    Int(Option<i64>),
    Text(Option<String>),
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn url_params() {
        assert!(check_url_param("postgres://reader@db:5432/crm").is_ok());
        assert!(check_url_param("mariadb://reader@db/crm").is_ok());
        assert!(check_url_param("sqlite:crm.db").is_ok());
        assert!(check_url_param("postgres://reader:pw@db/crm").is_err());
        assert!(check_url_param("mysql://db/crm?password=x").is_err());
        assert!(check_url_param("oracle://db").is_err());
    }

    #[test]
    fn dialects_quote_and_bind() {
        let my = Dialect(Backend::MySql);
        let pg = Dialect(Backend::Postgres);
        assert_eq!(my.ident("s.t"), "`s`.`t`");
        assert_eq!(pg.ident("s.t"), "\"s\".\"t\"");
        let mut binds = Vec::new();
        assert_eq!(
            pg.in_list("x", &["a".into(), "b".into()], &mut binds),
            "x IN ($1, $2)"
        );
        assert_eq!(binds, ["a", "b"]);
        assert_eq!(my.in_list("x", &[], &mut binds), "1 = 0");
    }
}
