//! A fresh PostgreSQL database per test on the machine's server (`FUNNELGATE_TEST_POSTGRES_URL`
//! names the server and admin database, default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped when the guard is dropped (also when the test panics).

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::{AssertSqlSafe, Connection};

pub fn admin_url() -> String {
    std::env::var("FUNNELGATE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test.
pub struct PgDb {
    pub name: String,
    pub url: String,
}

impl PgDb {
    pub async fn create(prefix: &str) -> PgDb {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let name = format!(
            "fg_{prefix}_{}_{}_{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let admin = admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL is needed for this test at {admin} (set FUNNELGATE_TEST_POSTGRES_URL): {e}")
        });
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_string()).unwrap();
        PgDb {
            url: format!("{base}/{name}"),
            name,
        }
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        // Synchronous on purpose: runs during unwinding too. FORCE ends leftover sessions.
        let _ = std::process::Command::new("psql")
            .arg(admin_url())
            .arg("-qc")
            .arg(format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}
