//! Probe results written back, a batch per statement.

use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::media::MediaCheck;

/// A probe's finding, for the call it was made for.
pub struct Finding<'a> {
    pub integration_id: Uuid,
    pub uid: &'a str,
    pub media_url: &'a str,
    pub status: &'a MediaCheck,
    pub attempts: u32,
    pub next_probe_at: Option<DateTime<Utc>>,
}

/// One statement. A result applies only while the call still has the probed URL (a call
/// updated with another one waits for that URL's own probe), and never over a newer
/// result: a redelivered or late probe cannot undo what a later one found. Returns how many
/// calls it changed.
pub async fn write(pool: &PgPool, findings: &[Finding<'_>]) -> Result<u64, sqlx::Error> {
    let n = findings.len();
    let mut integration_ids = Vec::with_capacity(n);
    let mut uids = Vec::with_capacity(n);
    let mut urls = Vec::with_capacity(n);
    let mut states = Vec::with_capacity(n);
    let mut http_statuses = Vec::with_capacity(n);
    let mut content_types = Vec::with_capacity(n);
    let mut content_lengths = Vec::with_capacity(n);
    let mut insecure = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut checked_at = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut next_probe_at = Vec::with_capacity(n);
    for f in findings {
        integration_ids.push(f.integration_id);
        uids.push(f.uid);
        urls.push(f.media_url);
        states.push(f.status.state.as_str());
        http_statuses.push(f.status.http_status.map(i32::from));
        content_types.push(f.status.content_type.as_deref());
        content_lengths.push(f.status.content_length);
        insecure.push(f.status.insecure);
        errors.push(f.status.error.as_deref());
        checked_at.push(f.status.checked_at);
        attempts.push(i32::try_from(f.attempts).unwrap_or(i32::MAX));
        next_probe_at.push(f.next_probe_at);
    }
    let done = sqlx::query(
        "UPDATE calls c SET
            media_status = r.state, media_reachable = r.state = 'reachable',
            media_http_status = r.http_status, media_content_type = r.content_type,
            media_content_length = r.content_length, media_insecure = r.insecure,
            media_error = r.error, media_checked_at = r.checked_at,
            media_probe_attempts = r.attempts, media_next_probe_at = r.next_probe_at
         FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int4[], $6::text[],
                     $7::int8[], $8::bool[], $9::text[], $10::timestamptz[], $11::int4[],
                     $12::timestamptz[])
           AS r(integration_id, uid, media_url, state, http_status, content_type, content_length,
                insecure, error, checked_at, attempts, next_probe_at)
         JOIN call_keys k ON k.integration_id = r.integration_id AND k.uid = r.uid
         WHERE c.id = k.call_id AND c.created_at = k.created_at
           AND c.media_url = r.media_url
           AND (c.media_checked_at IS NULL OR c.media_checked_at <= r.checked_at)",
    )
    .bind(integration_ids)
    .bind(uids)
    .bind(urls)
    .bind(states)
    .bind(http_statuses)
    .bind(content_types)
    .bind(content_lengths)
    .bind(insecure)
    .bind(errors)
    .bind(checked_at)
    .bind(attempts)
    .bind(next_probe_at)
    .execute(pool)
    .await?;
    Ok(done.rows_affected())
}
