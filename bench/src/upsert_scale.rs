//! `bench upsert-scale`: the raw upsert rate (the worker's own statement, batches and
//! sessions, as `raw::upsert` measures it) with millions of calls already stored. The table
//! is filled by `INSERT .. SELECT generate_series` in a database of its own, dropped
//! afterwards, to each size in turn; at each size the same number of new calls is upserted,
//! then upserted again (every row a conflict, the replay of a redelivered batch).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;

use crate::bodies::{self, Spec};
use crate::fixture::Fixture;
use crate::raw;
use crate::report::Rate;

/// Rows written by one fill statement: progress is printed after each.
const FILL_CHUNK: u64 = 1_000_000;
/// The filled calls were first stored over this many days before now, oldest first, as a
/// table that keeps a month of calls at millions a day would hold them.
const FILL_DAYS: u64 = 30;

#[derive(clap::Args)]
pub struct Args {
    /// Calls already stored before each measurement, ascending, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "0,5000000,20000000")]
    rows: Vec<u64>,
    /// New calls upserted at each size.
    #[arg(long, default_value_t = 200_000)]
    calls: usize,
    /// Where to write the JSON [default: bench/upsert-scale.json in the target directory].
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Point {
    pub existing_rows: u64,
    /// Upserts of calls not stored yet.
    pub new_calls: Rate,
    /// The same calls upserted again: every row meets its stored version.
    pub repeated_calls: Rate,
    /// calls (every partition) and call_keys, indexes included, after the measurement.
    pub bytes_on_disk: i64,
    pub fill_seconds: f64,
    /// The machine's 1-minute load average before the upserts: others' work shares the cores.
    pub load_average: Option<f64>,
}

pub async fn run(args: Args, operators: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rows.windows(2).all(|w| w[0] <= w[1]),
        "--rows must be ascending: each size is filled on top of the last"
    );
    anyhow::ensure!(args.calls > 0, "--calls must be above 0");
    let out = match args.out {
        Some(out) => out,
        None => crate::outputs(None, chrono::Utc::now())?[0].with_file_name("upsert-scale.json"),
    };
    let fixture = Fixture::create(operators).await?;
    let outcome = tokio::select! {
        outcome = measure(&fixture, &args.rows, args.calls) => outcome,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    for problem in fixture.remove().await {
        eprintln!("bench: could not remove {problem}");
    }
    let points = outcome?;
    println!("{}", table(&points, args.calls));
    std::fs::write(&out, serde_json::to_vec_pretty(&points)?)
        .with_context(|| format!("write {}", out.display()))?;
    println!("JSON: {}", out.display());
    Ok(())
}

async fn measure(fixture: &Fixture, sizes: &[u64], calls: usize) -> anyhow::Result<Vec<Point>> {
    let total = sizes.last().copied().unwrap_or(0);
    let mut operators: Vec<String> = fixture.operators.keys().cloned().collect();
    operators.sort();
    let mut filled = 0;
    let mut points = Vec::with_capacity(sizes.len());
    for &size in sizes {
        let started = Instant::now();
        fill(fixture, filled, size, total).await?;
        filled = size;
        for sql in ["VACUUM ANALYZE call_keys, calls", "CHECKPOINT"] {
            sqlx::raw_sql(sql)
                .execute(&fixture.pool)
                .await
                .with_context(|| format!("after the fill: {sql}"))?;
        }
        let fill_seconds = started.elapsed().as_secs_f64();

        let uid_prefix = format!("scale{size}");
        let (bodies, _) = bodies::generate(
            calls,
            &Spec {
                operators: &operators,
                media_base: "https://recordings.example",
                other_media: &[],
                uid_prefix: &uid_prefix,
                seed: size,
            },
        );
        let envelopes = raw::envelopes(&bodies, fixture)?;
        let load_average = crate::machine::load_average();
        eprintln!("upsert-scale: {size} rows stored, upserting {calls} new calls");
        let new_calls = raw::upsert(&fixture.pool, &envelopes, &fixture.operators).await?;
        let repeated_calls = raw::upsert(&fixture.pool, &envelopes, &fixture.operators).await?;
        let bytes_on_disk = bytes_on_disk(&fixture.pool).await?;
        // Now, not only in the table at the end: a run stopped at a larger size keeps these.
        eprintln!(
            "upsert-scale: {size} rows stored: {:.0} new calls/s, {:.0} repeated calls/s",
            new_calls.per_sec, repeated_calls.per_sec
        );
        // What was measured is removed again, so that each size holds exactly its rows.
        sqlx::query(
            "WITH gone AS (DELETE FROM call_keys WHERE starts_with(uid, $1) RETURNING call_id, created_at)
             DELETE FROM calls c USING gone WHERE c.id = gone.call_id AND c.created_at = gone.created_at",
        )
        .bind(format!("{uid_prefix}-"))
        .execute(&fixture.pool)
        .await
        .context("remove the measured calls")?;
        points.push(Point {
            existing_rows: size,
            new_calls,
            repeated_calls,
            bytes_on_disk,
            fill_seconds,
            load_average,
        });
    }
    Ok(points)
}

/// Stores calls `from + 1 ..= to` of `total`: call i was first stored
/// `(total - i) / total * FILL_DAYS` days ago, so that each size is filled in time order, as
/// the worker would have stored it, and ids are time-ordered like the worker's UUIDv7s. uids
/// are random hex (md5), the worst case for the key index.
async fn fill(fixture: &Fixture, from: u64, to: u64, total: u64) -> anyhow::Result<()> {
    let operator = fixture
        .operators
        .values()
        .next()
        .context("the fixture has no operator")?;
    let mut done = from;
    while done < to {
        let end = (done + FILL_CHUNK).min(to);
        sqlx::query(
            "WITH g AS (
                SELECT i, md5(i::text) AS uid,
                       now() - ($2 - i) * ($5 * interval '1 day') / $2 AS created_at
                FROM generate_series($1, $6) AS i
             ), rows AS (
                SELECT i, uid, created_at,
                       (lpad(to_hex((extract(epoch FROM created_at) * 1000)::bigint), 12, '0')
                        || substr(md5(uid), 1, 20))::uuid AS id
                FROM g
             ), keys AS (
                INSERT INTO call_keys (integration_id, uid, call_id, created_at)
                SELECT $3, uid, id, created_at FROM rows
             )
             INSERT INTO calls (id, created_at, integration_id, uid, uid_derived, organisation_id,
                 operator_id, user_id, department_id, started_at, media_url, media_insecure,
                 ingest_id, received_at, media_status, media_probe_attempts)
             SELECT id, created_at, $3, uid, false, $4, 'filled', $7, $8, created_at,
                    'https://recordings.example/filled/' || uid || '.wav', false, id, created_at,
                    'reachable', 1
             FROM rows",
        )
        .bind(i64::try_from(done + 1)?)
        .bind(i64::try_from(total)?)
        .bind(fixture.integration_id)
        .bind(fixture.organisation_id)
        .bind(i64::try_from(FILL_DAYS)?)
        .bind(i64::try_from(end)?)
        .bind(operator.user_id)
        .bind(operator.department_id)
        .execute(&fixture.pool)
        .await
        .context("fill calls")?;
        done = end;
        eprintln!("upsert-scale: filled {done} of {to} rows");
    }
    Ok(())
}

async fn bytes_on_disk(pool: &PgPool) -> anyhow::Result<i64> {
    sqlx::query_scalar(
        "SELECT (SELECT COALESCE(sum(pg_total_relation_size(relid)), 0)::int8 FROM pg_partition_tree('calls'))
              + pg_total_relation_size('call_keys')",
    )
    .fetch_one(pool)
    .await
    .context("table sizes")
}

fn table(points: &[Point], calls: usize) -> String {
    let mut lines = vec![
        format!(
            "raw upsert into calls ({calls} calls per size; {})",
            raw::method(0).upsert
        ),
        format!(
            "{:>14} | {:>14} | {:>18} | {:>9} | {:>12}",
            "rows stored", "new calls/s", "repeated calls/s", "on disk", "load average"
        ),
    ];
    let gib = |b: i64| format!("{:.1} GiB", b as f64 / f64::from(1u32 << 30));
    for p in points {
        lines.push(format!(
            "{:>14} | {:>14.0} | {:>18.0} | {:>9} | {:>12}",
            p.existing_rows,
            p.new_calls.per_sec,
            p.repeated_calls.per_sec,
            gib(p.bytes_on_disk),
            p.load_average.map_or("-".into(), |l| format!("{l:.1}"))
        ));
    }
    lines.join("\n")
}
