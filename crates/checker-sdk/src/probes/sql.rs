//! `sql`: one read-only query against PostgreSQL, MySQL/MariaDB or SQLite, returning one row:
//! the first column is the measured value, an optional second column the sample size.
//!
//! - value: integer, float, decimal/numeric or boolean (1.0/0.0); NULL → NO_DATA
//! - zero rows → NO_DATA; more than one row → ERROR; more than two columns → ERROR
//! - read-only is enforced by the database, not by parsing SQL: PostgreSQL runs the query in a
//!   `READ ONLY` transaction (and connects with `default_transaction_read_only = on`), MySQL and
//!   MariaDB in a `START TRANSACTION READ ONLY` transaction, both rolled back; SQLite opens the
//!   file read-only with `query_only`
//! - statement timeout = the probe's timeout (`statement_timeout`, `max_execution_time` on
//!   MySQL, `max_statement_time` on MariaDB, a progress handler on SQLite); a query cancelled by
//!   it is a permanent ERROR (retrying a query that outgrew its budget only loads the database)
//! - where the connection URL comes from: `url` (no password in it; the probe's `secret`, if
//!   named, is then the password), `sqlite_path`, or, with neither, the probe's `secret` holding
//!   the whole URL with credentials
//! - connections come from sqlx's pools through the checkers' one SQL layer, [`crate::db`]
//!   (at most 2 per URL, closed after 60 s idle), shared by the probes of one factory

use std::sync::Arc;

use async_trait::async_trait;
use funnelgate_core::{HumanDuration, Measurement, ProbeStatus};
use futures::TryStreamExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sqlx::mysql::MySqlRow;
use sqlx::postgres::{PgRow, PgValueFormat};
use sqlx::sqlite::SqliteRow;
use sqlx::{AssertSqlSafe, Column, Row, TypeInfo, ValueRef};

use crate::db::{Conn, DbPools, SessionOptions, Target, backend_of, check_url_param};
use crate::probe::{Probe, ProbeContext, ProbeError, ProbeFactory, TypedFactory};

/// Probe kind name.
pub const KIND: &str = "sql";

/// Params of the `sql` probe.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlParams {
    /// One read-only query returning one row. First column: the measured value (number or
    /// boolean). Optional second column: the sample size (integer), checked against `min_sample`.
    pub query: String,
    /// Connection URL without a password: `postgres://reader@db:5432/crm`,
    /// `mysql://reader@db:3306/crm`, `mariadb://…`, or `sqlite:path/to.db`. The probe's `secret`,
    /// if named, is the password. Leave `url` and `sqlite_path` out to take the whole URL (with
    /// credentials) from the `secret`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Path of an SQLite database file, opened read-only (relative to the checker's working
    /// directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sqlite_path: Option<String>,
    /// Unit of the value in reports, e.g. `percent`, `count`, `ratio`; default `value`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The time window the query covers, e.g. `30d`; shown with the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<String>")]
    pub window: Option<HumanDuration>,
}

/// The `sql` factory. Probes built by one factory share connections per database URL.
pub fn factory() -> impl ProbeFactory {
    let pools = Arc::new(DbPools::new());
    TypedFactory::<SqlParams, _>::new(
        KIND,
        "one read-only SQL query returning one number (and optionally its sample size)",
        "value",
        move |p| Ok(Arc::new(SqlProbe::new(p, Arc::clone(&pools))?) as Arc<dyn Probe>),
    )
    .vendors(&["postgresql", "mysql", "mariadb", "sqlite"])
}

/// A configured `sql` probe.
pub struct SqlProbe {
    params: SqlParams,
    pools: Arc<DbPools>,
}

impl SqlProbe {
    fn new(params: SqlParams, pools: Arc<DbPools>) -> Result<SqlProbe, ProbeError> {
        let bad = |m: String| ProbeError::params(format!("params of `{KIND}`: {m}"));
        if params.query.trim().is_empty() {
            return Err(bad("`query` must not be empty".into()));
        }
        match (&params.url, &params.sqlite_path) {
            (Some(_), Some(_)) => return Err(bad("set `url` or `sqlite_path`, not both".into())),
            (Some(u), None) => check_url_param(u).map_err(bad)?,
            (None, Some(p)) if p.trim().is_empty() => {
                return Err(bad("`sqlite_path` must not be empty".into()));
            }
            _ => {}
        }
        if let Some(u) = &params.url
            && backend_of(u).is_none()
        {
            return Err(bad("unknown database url scheme".into()));
        }
        Ok(SqlProbe { params, pools })
    }
}

// ------------------------------------------------------------------ running the query

/// What the query returned.
#[derive(Debug, PartialEq)]
enum Rows {
    Zero,
    One(Scalar),
    Many,
}

/// The decoded single row.
#[derive(Debug, PartialEq)]
struct Scalar {
    column: String,
    value: Option<f64>,
    sample: Option<u64>,
}

/// Why a run failed: a database error, or a row we cannot use.
enum Failure {
    Db(sqlx::Error),
    Shape(String),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Db(e)
    }
}

/// The first row and whether there is a second, decoded with `decode`.
async fn first_two<'e, R, E>(
    executor: E,
    query: &str,
    decode: fn(&R, usize) -> Result<Option<f64>, String>,
) -> Result<Rows, Failure>
where
    R: Row,
    E: sqlx::Executor<'e, Database = R::Database>,
    for<'q> <R::Database as sqlx::Database>::Arguments: sqlx::IntoArguments<R::Database>,
    R::Database: sqlx::Database<Row = R>,
{
    let mut stream = sqlx::query(AssertSqlSafe(query.to_string())).fetch(executor);
    let first = stream.try_next().await?;
    let more = if first.is_some() {
        stream.try_next().await?.is_some()
    } else {
        false
    };
    Ok(match (first, more) {
        (None, _) => Rows::Zero,
        (Some(_), true) => Rows::Many,
        (Some(row), false) => Rows::One(decode_row(&row, decode).map_err(Failure::Shape)?),
    })
}

/// Decode the value column and the optional sample-size column of a row.
fn decode_row<R: Row>(
    row: &R,
    decode: fn(&R, usize) -> Result<Option<f64>, String>,
) -> Result<Scalar, String> {
    let columns = row.columns();
    if columns.is_empty() || columns.len() > 2 {
        return Err(format!(
            "query returned {} columns, expected 1 (the value) or 2 (the value and the sample size)",
            columns.len()
        ));
    }
    let column = columns[0].name().to_string();
    let value = decode(row, 0).map_err(|e| format!("column `{column}`: {e}"))?;
    let sample = if columns.len() == 2 {
        let name = columns[1].name().to_string();
        match decode(row, 1).map_err(|e| format!("sample size column `{name}`: {e}"))? {
            None => None,
            Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64 => Some(n as u64),
            Some(n) => {
                return Err(format!(
                    "sample size column `{name}` is {n}, expected a non-negative integer"
                ));
            }
        }
    } else {
        None
    };
    Ok(Scalar {
        column,
        value,
        sample,
    })
}

fn unsupported(type_name: &str) -> String {
    format!("has type {type_name}, expected a number or a boolean")
}

fn decode_pg(row: &PgRow, i: usize) -> Result<Option<f64>, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(None);
    }
    let type_name = raw.type_info().name().to_string();
    let err = |e: sqlx::Error| e.to_string();
    let v = match type_name.as_str() {
        "INT2" => f64::from(row.try_get::<i16, _>(i).map_err(err)?),
        "INT4" => f64::from(row.try_get::<i32, _>(i).map_err(err)?),
        "INT8" => row.try_get::<i64, _>(i).map_err(err)? as f64,
        "FLOAT4" => f64::from(row.try_get::<f32, _>(i).map_err(err)?),
        "FLOAT8" => row.try_get::<f64, _>(i).map_err(err)?,
        "BOOL" => f64::from(u8::from(row.try_get::<bool, _>(i).map_err(err)?)),
        "OID" => f64::from(
            row.try_get::<sqlx::postgres::types::Oid, _>(i)
                .map_err(err)?
                .0,
        ),
        "NUMERIC" => match raw.format() {
            PgValueFormat::Binary => pg_numeric(raw.as_bytes().map_err(|e| e.to_string())?)?,
            PgValueFormat::Text => {
                let s = raw.as_str().map_err(|e| e.to_string())?;
                s.parse::<f64>()
                    .map_err(|_| format!("numeric value `{s}` is not a number"))?
            }
        },
        other => return Err(unsupported(other)),
    };
    Ok(Some(v))
}

/// PostgreSQL's binary NUMERIC: ndigits, weight, sign, dscale, then base-10000 digits.
fn pg_numeric(bytes: &[u8]) -> Result<f64, String> {
    let word = |i: usize| -> Result<u16, String> {
        bytes
            .get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "malformed numeric value".to_string())
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(1)? as i16);
    let sign = word(2)?;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Err("numeric value is NaN".into()),
        0xD000 | 0xF000 => return Err("numeric value is infinite".into()),
        _ => return Err("malformed numeric value".into()),
    }
    let mut digits = Vec::with_capacity(ndigits);
    for k in 0..ndigits {
        digits.push(i32::from(word(4 + k)?));
    }
    let digit = |idx: i32| -> i32 {
        if idx < 0 {
            0
        } else {
            digits.get(idx as usize).copied().unwrap_or(0)
        }
    };
    let mut s = String::new();
    if sign == 0x4000 {
        s.push('-');
    }
    if weight < 0 {
        s.push('0');
    } else {
        for idx in 0..=weight {
            if idx == 0 {
                s.push_str(&digit(idx).to_string());
            } else {
                s.push_str(&format!("{:04}", digit(idx)));
            }
        }
    }
    s.push('.');
    let frac_groups = ndigits as i32 - weight - 1;
    for e in 1..=frac_groups.max(0) {
        s.push_str(&format!("{:04}", digit(weight + e)));
    }
    s.push('0');
    s.parse::<f64>()
        .map_err(|_| "malformed numeric value".to_string())
}

fn decode_mysql(row: &MySqlRow, i: usize) -> Result<Option<f64>, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(None);
    }
    let type_name = raw.type_info().name().to_string();
    let err = |e: sqlx::Error| e.to_string();
    let v = match type_name.as_str() {
        "BOOLEAN" => f64::from(u8::from(row.try_get::<bool, _>(i).map_err(err)?)),
        "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
            row.try_get::<i64, _>(i).map_err(err)? as f64
        }
        t if t.ends_with(" UNSIGNED") => row.try_get::<u64, _>(i).map_err(err)? as f64,
        "FLOAT" => f64::from(row.try_get::<f32, _>(i).map_err(err)?),
        "DOUBLE" => row.try_get::<f64, _>(i).map_err(err)?,
        "DECIMAL" => {
            // DECIMAL arrives as its decimal text in both protocols.
            let s: String = row.try_get_unchecked(i).map_err(err)?;
            s.trim()
                .parse::<f64>()
                .map_err(|_| format!("decimal value `{s}` is not a number"))?
        }
        other => return Err(unsupported(other)),
    };
    Ok(Some(v))
}

fn decode_sqlite(row: &SqliteRow, i: usize) -> Result<Option<f64>, String> {
    let raw = row.try_get_raw(i).map_err(|e| e.to_string())?;
    if raw.is_null() {
        return Ok(None);
    }
    let type_name = raw.type_info().name().to_string();
    let err = |e: sqlx::Error| e.to_string();
    let v = match type_name.as_str() {
        "INTEGER" | "BOOLEAN" => row.try_get::<i64, _>(i).map_err(err)? as f64,
        "REAL" | "NUMERIC" => row.try_get::<f64, _>(i).map_err(err)?,
        other => return Err(unsupported(other)),
    };
    Ok(Some(v))
}

#[async_trait]
impl Probe for SqlProbe {
    async fn run(&self, ctx: &ProbeContext) -> Result<Measurement, ProbeError> {
        let target = Target::resolve(
            ctx,
            self.params.url.as_deref(),
            self.params.sqlite_path.as_deref(),
        )
        .map_err(|mut e| {
            if e.kind == crate::probe::ProbeErrorKind::InvalidParams {
                e.message = format!("params of `{KIND}`: {}", e.message);
            }
            e
        })?;
        let mut session = self
            .pools
            .open(&target, ctx.timeout(), SessionOptions::default())
            .await?;
        let query = self.params.query.as_str();
        let label = target.label().to_string();
        let result = match session.conn() {
            Conn::Postgres(c) => first_two(c, query, decode_pg).await,
            Conn::MySql(c) => first_two(c, query, decode_mysql).await,
            Conn::Sqlite(c) => first_two(c, query, decode_sqlite).await,
        };
        let rows = match result {
            Ok(rows) => rows,
            Err(Failure::Db(e)) => {
                let e = session.error(e);
                session.close().await;
                return Err(e);
            }
            Err(Failure::Shape(s)) => {
                let e = session.permanent(s);
                session.close().await;
                return Err(e);
            }
        };
        session.close().await;
        let unit = self.params.unit.clone().unwrap_or_default();
        let mut m = match rows {
            Rows::Zero => Measurement::verdict(ProbeStatus::NoData, "query returned no rows"),
            Rows::Many => {
                return Err(ProbeError::permanent(format!(
                    "{label}: query returned more than one row, expected exactly one"
                )));
            }
            Rows::One(Scalar {
                column,
                value: None,
                sample,
            }) => {
                let mut m = Measurement::verdict(
                    ProbeStatus::NoData,
                    format!("query returned NULL (column `{column}`)"),
                );
                m.sample_size = sample;
                m
            }
            Rows::One(Scalar {
                column,
                value: Some(v),
                sample,
            }) => {
                let mut text = format!("{column} = {}", crate::runner::format_number(v));
                if let Some(n) = sample {
                    text.push_str(&format!(" (sample of {n})"));
                }
                let mut m = Measurement::value(v, unit.clone(), text);
                m.sample_size = sample;
                m
            }
        };
        m.unit = unit;
        m.window = self.params.window;
        Ok(m.with_evidence("database", label))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn numeric(weight: i16, sign: u16, digits: &[u16]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend((digits.len() as u16).to_be_bytes());
        b.extend(weight.to_be_bytes());
        b.extend(sign.to_be_bytes());
        b.extend(0u16.to_be_bytes());
        for d in digits {
            b.extend(d.to_be_bytes());
        }
        b
    }

    #[test]
    fn pg_numeric_binary() {
        assert_eq!(pg_numeric(&numeric(-1, 0, &[6200])).unwrap(), 0.62);
        assert_eq!(pg_numeric(&numeric(1, 0, &[1, 2345])).unwrap(), 12345.0);
        assert_eq!(
            pg_numeric(&numeric(1, 0x4000, &[1, 2345, 6780])).unwrap(),
            -12345.678
        );
        assert_eq!(pg_numeric(&numeric(2, 0, &[7])).unwrap(), 700_000_000.0);
        assert_eq!(pg_numeric(&numeric(-2, 0, &[1])).unwrap(), 0.00000001);
        assert_eq!(pg_numeric(&numeric(0, 0, &[])).unwrap(), 0.0);
        assert!(
            pg_numeric(&numeric(0, 0xC000, &[]))
                .unwrap_err()
                .contains("NaN")
        );
        assert!(pg_numeric(&[0, 1]).is_err());
    }
}
