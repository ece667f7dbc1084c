//! The PostgreSQL comparison for durable appends (`srs bench log --pg URL`).
//!
//! What an event store on PostgreSQL does for one event: a transaction
//! that inserts one row into an events table whose `(stream, version)` is
//! unique, then commits (with the server's `synchronous_commit`, `on` by
//! default: the commit returns once the WAL is flushed, as our append
//! returns once sled has flushed). 64 writers, each on its own connection
//! and its own stream, like `append_64_writers`; each row's body is the
//! JSON of the same event `append_64_writers` appends.
//!
//! The table is created for the run under a unique name and dropped after
//! it; nothing else in the database is touched. Without `--pg` nothing of
//! this runs and no PostgreSQL is needed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_postgres::{Client, NoTls};

use crate::log::bench_event;

/// Why the PostgreSQL figure could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("PostgreSQL at {url}: {source}")]
    Connect {
        url: String,
        source: tokio_postgres::Error,
    },
    #[error("PostgreSQL: {0}")]
    Query(#[from] tokio_postgres::Error),
    #[error("a writer task failed: {0}")]
    Task(String),
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            let user = creds.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

async fn connect(url: &str) -> Result<Client, PgError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|source| PgError::Connect {
            url: redact(url),
            source,
        })?;
    tokio::spawn(async move {
        // Ends with an error only when the server goes away; the writer
        // then fails on its next statement and says so.
        let _ = connection.await;
    });
    Ok(client)
}

/// Single-event INSERT+COMMIT from `writers` concurrent connections for
/// `measure`: committed events/s.
pub async fn append_rate(url: &str, writers: usize, measure: Duration) -> Result<f64, PgError> {
    let table = format!("srs_bench_events_{}", uuid::Uuid::new_v4().simple());
    let admin = connect(url).await?;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (
                position BIGSERIAL PRIMARY KEY,
                stream TEXT NOT NULL,
                version BIGINT NOT NULL,
                event_id BYTEA NOT NULL UNIQUE,
                recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
                body BYTEA NOT NULL,
                UNIQUE (stream, version)
            )"
        ))
        .await?;
    let result = run_writers(url, &table, writers, measure).await;
    // Drop the table even when a writer failed.
    let dropped = admin
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await;
    let rate = result?;
    dropped?;
    Ok(rate)
}

async fn run_writers(
    url: &str,
    table: &str,
    writers: usize,
    measure: Duration,
) -> Result<f64, PgError> {
    let mut clients = Vec::with_capacity(writers);
    for _ in 0..writers {
        clients.push(connect(url).await?);
    }
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + measure;
    let mut tasks = Vec::with_capacity(writers);
    for (w, mut client) in clients.into_iter().enumerate() {
        let done = done.clone();
        let insert = format!(
            "INSERT INTO {table} (stream, version, event_id, body) VALUES ($1, $2, $3, $4)"
        );
        tasks.push(tokio::spawn(async move {
            let statement = client.prepare(&insert).await?;
            let stream = format!("recording-{w}");
            let mut version: i64 = 0;
            let mut n = (w as u64) << 32;
            while Instant::now() < deadline {
                version += 1;
                n += 1;
                let body = serde_json::to_vec(&bench_event(n)).unwrap_or_default();
                let event_id = uuid::Uuid::new_v4();
                let tx = client.transaction().await?;
                tx.execute(
                    &statement,
                    &[&stream, &version, &event_id.as_bytes().as_slice(), &body],
                )
                .await?;
                tx.commit().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, tokio_postgres::Error>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| PgError::Task(e.to_string()))??;
    }
    let elapsed = start.elapsed().as_secs_f64();
    Ok(done.load(Ordering::Relaxed) as f64 / elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_not_printed() {
        assert_eq!(
            redact("postgresql://bench:secret@127.0.0.1:5432/db"),
            "postgresql://bench:***@127.0.0.1:5432/db"
        );
        assert_eq!(redact("host=/run/postgresql"), "host=/run/postgresql");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_clear_error() {
        // Port 1 on loopback: nothing listens there.
        let error = append_rate(
            "postgresql://bench:secret@127.0.0.1:1/db?connect_timeout=2",
            2,
            Duration::from_millis(10),
        )
        .await
        .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("127.0.0.1:1"), "{text}");
        assert!(!text.contains("secret"), "{text}");
    }
}
