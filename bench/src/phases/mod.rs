//! One size of the benchmark, phase by phase, against one fixture: the raw limits, the
//! gateway alone (leaving a backlog), the worker draining that backlog, both together, then
//! a second backlog drained by a worker that does not probe the media.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::bodies::{self, Spec};
use crate::cpu;
use crate::fixture::Fixture;
use crate::load::{self, LoadResult, Target};
use crate::machine;
use crate::media_server::MediaServer;
use crate::processes::{self, Service};
use crate::raw;
use crate::report::{
    self, EndToEnd, Gateway, PostToRow, Rate, Raw, Rss, Series, SizeReport, Unprobed, Worker,
};

const POLL_EVERY: Duration = Duration::from_millis(100);
const EXACT_EVERY: Duration = Duration::from_secs(1);
/// Rows that stop arriving for this long mean the pipeline is stuck, not slow.
const STALL: Duration = Duration::from_secs(60);
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(
    fixture: &Fixture,
    n: usize,
    concurrency: usize,
    logs: &Path,
) -> anyhow::Result<SizeReport> {
    let load_average_before = machine::load_average();
    let media = MediaServer::start().await?;
    let mut operators: Vec<String> = fixture.operators.keys().cloned().collect();
    operators.sort();
    let spec = |uid_prefix, seed| Spec {
        operators: &operators,
        media_base: &media.base,
        uid_prefix,
        seed,
    };

    progress(n, "raw limits: publish, consume, upsert");
    let (raw_bodies, _) = bodies::generate(n, &spec("raw", 1));
    let envelopes = raw::envelopes(&raw_bodies, fixture)?;
    drop(raw_bodies);
    let publish = raw::publish(&fixture.raw_broker, raw::payloads(&envelopes)).await?;
    let consume = raw::consume(&fixture.raw_broker, n).await?;
    let upsert = raw::upsert(&fixture.pool, &envelopes, &fixture.operators).await?;
    drop(envelopes);
    fixture.truncate_calls().await?;
    let raw = Raw {
        method: raw::method(),
        publish,
        consume,
        upsert,
    };

    progress(n, "gateway alone");
    let (port, worker_port) = (free_port()?, free_port()?);
    let env = fixture.child_env(port, worker_port);
    let worker_addr = SocketAddr::from(([127, 0, 0, 1], worker_port));
    let gateway = Service::start("gateway", &env, &logs.join(format!("{n}-gateway.log")))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    wait_ready(&gateway, addr).await?;
    let target = Arc::new(Target {
        addr,
        path: format!(
            "/api/v1/integrations/{}/phone_calls",
            fixture.integration_id
        ),
        token: fixture.token.clone(),
    });
    let (gateway_bodies, shape) = bodies::generate(n, &spec("gw", 2));
    let before = cpu::snapshot()?;
    let alone = load::run(target.clone(), Arc::new(gateway_bodies), concurrency).await?;
    let gateway_cpu = cpu::Phase::new(before, cpu::snapshot()?, alone.accepted);
    gateway.check_alive()?;
    let accepted = Rate::new(alone.accepted, alone.elapsed);
    let published_alone = Published::at(addr).await;
    let calls_per_message = published_alone.calls_per_message(&Published::default());
    let gateway_report = Gateway {
        accepted,
        calls_per_message,
        ratio_of_raw_publish: report::ratio(accepted.per_sec, raw.publish.per_sec),
        errors: alone.errors,
        latency: alone.latencies.summary(),
        cpu: gateway_cpu.usage(gateway.pid()),
        cpu_by_group: gateway_cpu.by_group(cpu::Services {
            gateway: gateway.pid(),
            worker: None,
        }),
    };

    progress(n, "worker draining the backlog");
    let probes_before = media.probes();
    let drain = Drain::run(
        fixture,
        &env,
        &logs.join(format!("{n}-worker.log")),
        worker_port,
        alone.accepted,
        &gateway,
    )
    .await?;
    let worker = drain.worker;
    let services = cpu::Services {
        gateway: gateway.pid(),
        worker: Some(worker.pid()),
    };
    let worker_report = Worker {
        drained: drain.rate,
        calls_per_batch: drain.calls_per_batch,
        media_probes_served: media.probes() - probes_before,
        media_reachable_rows: fixture
            .count("SELECT count(*) FROM calls WHERE media_reachable")
            .await?,
        dead_letters: fixture.count("SELECT count(*) FROM dead_letters").await?,
        ratio_of_raw_upsert: report::ratio(drain.rate.per_sec, raw.upsert.per_sec),
        cpu: drain.cpu.usage(worker.pid()),
        cpu_by_group: drain.cpu.by_group(services),
    };

    progress(n, "end to end");
    fixture.truncate_calls().await?;
    let (e2e_bodies, _) = bodies::generate(n, &spec("e2e", 3));
    let before = cpu::snapshot()?;
    let (together, rss) = processes::sampling_rss(
        &[&gateway, &worker],
        end_to_end(
            fixture,
            worker_addr,
            target.clone(),
            e2e_bodies,
            concurrency,
            &[&gateway, &worker],
        ),
    )
    .await;
    let ((together, done_at), calls_per_batch) = together?;
    let calls_per_message = Published::at(addr)
        .await
        .calls_per_message(&published_alone);
    let e2e_cpu = cpu::Phase::new(before, cpu::snapshot()?, together.accepted);
    let sustained = Rate::new(together.accepted, between(together.started_at, done_at));
    let (bound_by, bound_per_sec) = report::slowest(&raw);
    let end_to_end = EndToEnd {
        sustained,
        calls_per_batch,
        calls_per_message,
        bound_by,
        bound_per_sec,
        ratio_of_bound: report::ratio(sustained.per_sec, bound_per_sec),
        errors: together.errors,
        post_latency: together.latencies.summary(),
        post_to_row: post_to_row(fixture).await?,
        dead_letters: fixture.count("SELECT count(*) FROM dead_letters").await?,
        gateway_cpu: e2e_cpu.usage(gateway.pid()),
        worker_cpu: e2e_cpu.usage(worker.pid()),
        cpu_by_group: e2e_cpu.by_group(services),
    };

    let worker_peak = worker.stop().await?;

    progress(n, "worker draining a backlog without media probes");
    fixture.truncate_calls().await?;
    let (unprobed_bodies, _) = bodies::generate(n, &spec("np", 4));
    let refill = load::run(target, Arc::new(unprobed_bodies), concurrency).await?;
    let unprobed_port = free_port()?;
    let mut unprobed_env = fixture.child_env(port, unprobed_port);
    unprobed_env.push(("APP_MEDIA__PROBE".into(), "false".into()));
    let probes_before = media.probes();
    let unprobed = Drain::run(
        fixture,
        &unprobed_env,
        &logs.join(format!("{n}-worker-without-probes.log")),
        unprobed_port,
        refill.accepted,
        &gateway,
    )
    .await?;
    let unprobed_services = cpu::Services {
        gateway: gateway.pid(),
        worker: Some(unprobed.worker.pid()),
    };
    let worker_without_probes = Unprobed {
        drained: unprobed.rate,
        calls_per_batch: unprobed.calls_per_batch,
        media_probes_served: media.probes() - probes_before,
        ratio_of_raw_upsert: report::ratio(unprobed.rate.per_sec, raw.upsert.per_sec),
        cpu: unprobed.cpu.usage(unprobed.worker.pid()),
        cpu_by_group: unprobed.cpu.by_group(unprobed_services),
    };
    unprobed.worker.stop().await?;

    let gateway_peak = gateway.stop().await?;
    Ok(SizeReport {
        calls: n,
        load_average_before,
        bodies: shape,
        gateway: gateway_report,
        raw,
        worker: worker_report,
        worker_without_probes,
        end_to_end,
        rss: Rss {
            gateway_peak_mb: report::kb_to_mb(gateway_peak),
            worker_peak_mb: report::kb_to_mb(worker_peak),
            gateway_end_to_end: Series::of_kb(&rss[0]),
            worker_end_to_end: Series::of_kb(&rss[1]),
        },
    })
}

/// A worker started on a backlog, timed until it has stored all of it.
struct Drain {
    worker: Service,
    rate: Rate,
    calls_per_batch: f64,
    cpu: cpu::Phase,
}

impl Drain {
    async fn run(
        fixture: &Fixture,
        env: &[(String, String)],
        log: &Path,
        worker_port: u16,
        backlog: usize,
        gateway: &Service,
    ) -> anyhow::Result<Self> {
        let started = Utc::now();
        // Before the start, so that the worker's own start-up is in its cost.
        let before = cpu::snapshot()?;
        let worker = Service::start("worker", env, log)?;
        let addr = SocketAddr::from(([127, 0, 0, 1], worker_port));
        let metrics = Metrics {
            addr,
            baseline: 0,
            batches: 0.0,
        };
        let drained_at = wait_for_rows(fixture, &metrics, backlog, &[gateway, &worker]).await?;
        let cpu = cpu::Phase::new(before, cpu::snapshot()?, backlog);
        Ok(Self {
            rate: Rate::new(backlog, between(started, drained_at)),
            calls_per_batch: metrics.calls_per_batch(&Metrics::at(addr).await),
            cpu,
            worker,
        })
    }
}

/// Posts every body with both services running; returns the load's result and when the
/// last accepted call was stored.
async fn end_to_end(
    fixture: &Fixture,
    worker: SocketAddr,
    target: Arc<Target>,
    bodies: Vec<Bytes>,
    concurrency: usize,
    services: &[&Service],
) -> anyhow::Result<((LoadResult, DateTime<Utc>), f64)> {
    let metrics = Metrics::at(worker).await;
    let load = load::run(target, Arc::new(bodies), concurrency).await?;
    // The last row can only follow the last accepted POST, so waiting from here loses nothing.
    let done = wait_for_rows(fixture, &metrics, load.accepted, services).await?;
    let calls_per_batch = metrics.calls_per_batch(&Metrics::at(worker).await);
    Ok(((load, done), calls_per_batch))
}

/// Waits until `expected` calls are stored and returns the last one's `created_at` (set
/// by its insert, just before the commit), so the poll's granularity is not in the figure.
/// Progress comes from the worker's own counter of committed calls, cheap to read; one
/// exact count confirms it. A `count(*)` every poll would load the very Postgres being
/// measured (a parallel scan of tens of ms at 200k rows).
async fn wait_for_rows(
    fixture: &Fixture,
    worker: &Metrics,
    expected: usize,
    services: &[&Service],
) -> anyhow::Result<DateTime<Utc>> {
    let expected = i64::try_from(expected)?;
    let mut progress = (-1, Instant::now());
    let mut last_exact: Option<Instant> = None;
    loop {
        let stored = worker.stored().await - worker.baseline;
        let now = Instant::now();
        // A redelivered call is counted twice but stored once: confirm, at most once a second.
        if stored >= expected && last_exact.is_none_or(|t| now - t >= EXACT_EVERY) {
            last_exact = Some(now);
            if let (rows, Some(last_row)) = fixture.stored().await? {
                if rows >= expected {
                    return Ok(last_row);
                }
            }
        }
        for service in services {
            service.check_alive()?;
        }
        if stored != progress.0 {
            progress = (stored, now);
        } else if now - progress.1 > STALL {
            let (rows, _) = fixture.stored().await?;
            let dead = fixture.count("SELECT count(*) FROM dead_letters").await?;
            bail!(
                "stuck at {rows} of {expected} calls stored for {STALL:?} ({dead} dead letters); see the worker's log"
            );
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// The worker's `/metrics`, read for its count of committed calls.
struct Metrics {
    addr: SocketAddr,
    /// The count when the phase started.
    baseline: i64,
    /// Transactions when the phase started.
    batches: f64,
}

impl Metrics {
    async fn at(addr: SocketAddr) -> Self {
        let mut metrics = Self {
            addr,
            baseline: 0,
            batches: 0.0,
        };
        metrics.baseline = metrics.stored().await;
        metrics.batches = counter(addr, "callq_worker_batches_total").await;
        metrics
    }

    async fn stored(&self) -> i64 {
        counter(self.addr, "callq_worker_calls_stored_total").await as i64
    }

    /// Mean calls per transaction from this reading to a later one.
    fn calls_per_batch(&self, later: &Self) -> f64 {
        (later.baseline - self.baseline) as f64 / (later.batches - self.batches).max(1.0)
    }
}

/// A counter from a service's `/metrics`; 0 until it answers (it may still be starting).
/// The gateway's cumulative counts of published calls and messages.
#[derive(Default)]
struct Published {
    calls: f64,
    messages: f64,
}

impl Published {
    async fn at(addr: SocketAddr) -> Self {
        Self {
            calls: counter(addr, "callq_gateway_calls_published_total").await,
            messages: counter(addr, "callq_gateway_messages_published_total").await,
        }
    }

    /// Mean calls per message published since `earlier`.
    fn calls_per_message(&self, earlier: &Self) -> f64 {
        (self.calls - earlier.calls) / (self.messages - earlier.messages).max(1.0)
    }
}

async fn counter(addr: SocketAddr, name: &str) -> f64 {
    let Ok((200, text)) = load::get(addr, "/metrics").await else {
        return 0.0;
    };
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0)
}

/// From a wall-clock instant to a row's timestamp (one clock: the same machine).
fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

async fn wait_ready(gateway: &Service, addr: SocketAddr) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        gateway.check_alive()?;
        if let Ok((200, _)) = load::get(addr, "/readyz").await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the gateway was not ready within {READY_TIMEOUT:?}; see its log");
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

async fn post_to_row(fixture: &Fixture) -> anyhow::Result<PostToRow> {
    let (p50, p99, max): (Option<f64>, Option<f64>, Option<f64>) = sqlx::query_as(
        "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY ms),
                percentile_cont(0.99) WITHIN GROUP (ORDER BY ms),
                max(ms)
         FROM (SELECT (extract(epoch FROM created_at - received_at) * 1000)::float8 AS ms
               FROM calls) rows",
    )
    .fetch_one(&fixture.pool)
    .await
    .context("POST-to-row percentiles")?;
    Ok(PostToRow {
        p50_ms: p50.unwrap_or(0.0),
        p99_ms: p99.unwrap_or(0.0),
        max_ms: max.unwrap_or(0.0),
    })
}

/// A port for a child to listen on: the kernel picks it, then it is released.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn progress(n: usize, phase: &str) {
    eprintln!("bench: {n} calls: {phase}");
}
