//! Figures read off the rows a phase left: delays between a row's timestamps, all set on
//! the one machine's clock (`received_at` by the gateway, `created_at` by the insert,
//! `media_checked_at` by the probe).

use anyhow::Context;

use crate::fixture::Fixture;
use crate::report::Delays;

/// From a row's receipt to its insert.
pub const POST_TO_ROW: (&str, &str) = ("received_at", "created_at");
/// From a row's receipt to its recording probed.
pub const POST_TO_PROBED: (&str, &str) = ("received_at", "media_checked_at");
/// From a row's insert to its recording probed: how far probing runs behind.
pub const PROBED_AFTER_STORED: (&str, &str) = ("created_at", "media_checked_at");

/// Percentiles of `to - from` over the rows where both are set, of the rows whose
/// recording is on `host` (a base URL) or of every row.
pub async fn delays(
    fixture: &Fixture,
    (from, to): (&str, &str),
    host: Option<&str>,
) -> anyhow::Result<Delays> {
    let (p50, p99, max): (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(&format!(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
                max(ms)
         FROM (SELECT (extract(epoch FROM {to} - {from}) * 1000)::float8 AS ms
               FROM calls
               WHERE {to} IS NOT NULL AND {from} IS NOT NULL
                 AND ($1::text IS NULL OR starts_with(media_url, $1))) rows"
    ))
    .bind(host.map(|base| format!("{base}/")))
    .fetch_one(&fixture.pool)
    .await
    .with_context(|| format!("percentiles of {to} - {from}"))?;
    Ok(Delays {
        p50_ms: p50.unwrap_or(0.0),
        p99_ms: p99.unwrap_or(0.0),
        max_ms: max.unwrap_or(0.0),
    })
}

pub async fn reachable(fixture: &Fixture) -> anyhow::Result<i64> {
    fixture
        .count("SELECT count(*) FROM calls WHERE media_status = 'reachable'")
        .await
}
