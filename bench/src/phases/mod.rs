//! One size of the benchmark, phase by phase, against one fixture: the raw limits, the
//! gateway alone (leaving a backlog), a worker storing and probing that backlog, gateway and
//! worker together (all recordings on a fast host, then a share on bad hosts), and a second
//! backlog stored by a worker without the probe stage, whose probe work a worker with only
//! the probe stage then takes; and calls and chats posted together (`mixed.rs`).

mod drain;
mod end_to_end;
mod mixed;
mod rows;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use chrono::{DateTime, Utc};

use crate::bodies::{self, Spec};
use crate::cpu;
use crate::fixture::Fixture;
use crate::load::{self, Target};
use crate::machine;
use crate::media_server::{Answer, MediaServer};
use crate::processes::{self, Service};
use crate::raw;
use crate::report::{
    self, BadHosts, EndToEnd, Gateway, HostShare, ProbeStageAlone, Rate, Raw, Rss, Series,
    SizeReport, StorageAlone, Worker,
};
use drain::{Drain, ProbeRun};
use end_to_end::Until;
use watch::{Published, WorkerMetrics};

const POLL_EVERY: Duration = Duration::from_millis(100);
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// The bad hosts: the shares of the calls whose recording is on a host that never answers
/// and on one that answers this late; the rest are on the fast host.
const SILENT_SHARE: f64 = 0.1;
const SLOW_SHARE: f64 = 0.2;
const SLOW_ANSWER: Duration = Duration::from_millis(300);

pub async fn run(
    fixture: &Fixture,
    n: usize,
    concurrency: usize,
    logs: &Path,
) -> anyhow::Result<SizeReport> {
    let load_average_before = machine::load_average();
    let media = MediaServer::start(Answer::AT_ONCE).await?;
    let slow = MediaServer::start(Answer::At(SLOW_ANSWER)).await?;
    let silent = MediaServer::start(Answer::Never).await?;
    let mut operators: Vec<String> = fixture.operators.keys().cloned().collect();
    operators.sort();
    let spec = |uid_prefix, seed| Spec {
        operators: &operators,
        media_base: &media.base,
        other_media: &[],
        uid_prefix,
        seed,
    };

    progress(n, "raw limits: publish, consume, upsert, HEAD");
    let (raw_bodies, _) = bodies::generate(n, &spec("raw", 1));
    let envelopes = raw::envelopes(&raw_bodies, fixture)?;
    drop(raw_bodies);
    let publish = raw::publish(&fixture.raw_broker, raw::payloads(&envelopes)).await?;
    let consume = raw::consume(&fixture.raw_broker, n).await?;
    let upsert = raw::upsert(&fixture.pool, &envelopes, &fixture.operators).await?;
    drop(envelopes);
    fixture.truncate_calls().await?;
    let head_loops = fixture.media.per_host_concurrency;
    let head = raw::head(&media.base, n, head_loops).await?;
    let raw = Raw {
        method: raw::method(head_loops),
        publish,
        consume,
        upsert,
        head,
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

    progress(n, "worker storing and probing the backlog");
    let served_before = media.probes();
    let log = logs.join(format!("{n}-worker.log"));
    let drain = Drain::run(fixture, &env, &log, worker_port, alone.accepted, &gateway).await?;
    let probed = drain.probed(fixture, &gateway).await?;
    let worker = &drain.worker;
    let services = cpu::Services {
        gateway: gateway.pid(),
        worker: Some(worker.pid()),
    };
    let worker_report = Worker {
        drained: drain.rate,
        probed,
        probed_ratio_of_raw_head: report::ratio(probed.per_sec, raw.head.per_sec),
        calls_per_batch: drain.calls_per_batch,
        media_probes_served: media.probes() - served_before,
        media_reachable_rows: rows::reachable(fixture).await?,
        probes: drain
            .metrics
            .outcomes(&WorkerMetrics::at(worker_addr).await),
        dead_letters: fixture.count("SELECT count(*) FROM dead_letters").await?,
        ratio_of_raw_upsert: report::ratio(drain.rate.per_sec, raw.upsert.per_sec),
        cpu: drain.cpu.usage(worker.pid()),
        cpu_by_group: drain.cpu.by_group(services),
    };

    progress(n, "end to end");
    fixture.truncate_calls().await?;
    let (e2e_bodies, _) = bodies::generate(n, &spec("e2e", 3));
    let both = [&gateway, worker];
    let before = cpu::snapshot()?;
    let (together, rss) = processes::sampling_rss(
        &both,
        end_to_end::post(
            fixture,
            worker_addr,
            target.clone(),
            e2e_bodies,
            concurrency,
            &both,
            Until::AllProbed,
        ),
    )
    .await;
    let together = together?;
    let calls_per_message = Published::at(addr)
        .await
        .calls_per_message(&published_alone);
    let e2e_cpu = cpu::Phase::new(before, cpu::snapshot()?, together.load.accepted);
    let load = &together.load;
    let sustained = Rate::new(load.accepted, between(load.started_at, together.stored_at));
    let (bound_by, bound_per_sec) = report::slowest(&raw);
    let end_to_end = EndToEnd {
        sustained,
        calls_per_batch: together.calls_per_batch,
        calls_per_message,
        bound_by,
        bound_per_sec,
        ratio_of_bound: report::ratio(sustained.per_sec, bound_per_sec),
        errors: load.errors.clone(),
        post_latency: load.latencies.summary(),
        post_to_row: rows::delays(fixture, rows::POST_TO_ROW, None).await?,
        post_to_probed: rows::delays(fixture, rows::POST_TO_PROBED, None).await?,
        probed_after_stored: rows::delays(fixture, rows::PROBED_AFTER_STORED, None).await?,
        probes: together.probes,
        dead_letters: fixture.count("SELECT count(*) FROM dead_letters").await?,
        gateway_cpu: e2e_cpu.usage(gateway.pid()),
        worker_cpu: e2e_cpu.usage(worker.pid()),
        cpu_by_group: e2e_cpu.by_group(services),
    };

    progress(n, "end to end with bad hosts");
    fixture.truncate_calls().await?;
    let others = [
        (slow.base.as_str(), SLOW_SHARE),
        (silent.base.as_str(), SILENT_SHARE),
    ];
    let bad_spec = Spec {
        other_media: &others,
        ..spec("bad", 5)
    };
    let (bad_bodies, bad_shape) = bodies::generate(n, &bad_spec);
    let (on_slow, on_silent) = (bad_shape.other_media[0], bad_shape.other_media[1]);
    let on_fast = n - on_slow - on_silent;
    let before = cpu::snapshot()?;
    let bad = end_to_end::post(
        fixture,
        worker_addr,
        target.clone(),
        bad_bodies,
        concurrency,
        &both,
        Until::HostProbed(&media, on_fast),
    )
    .await?;
    let bad_cpu = cpu::Phase::new(before, cpu::snapshot()?, bad.load.accepted);
    let sustained = Rate::new(
        bad.load.accepted,
        between(bad.load.started_at, bad.stored_at),
    );
    let post_to_row = rows::delays(fixture, rows::POST_TO_ROW, None).await?;
    let host = |host, base: &str, answers_after: Option<Duration>, calls| HostShare {
        host,
        base: base.to_owned(),
        answers_after_ms: answers_after.map(|d| d.as_millis() as u64),
        calls,
    };
    let bad_hosts = BadHosts {
        hosts: vec![
            host("fast", &media.base, Some(Duration::ZERO), on_fast),
            host("slow", &slow.base, Some(SLOW_ANSWER), on_slow),
            host("silent", &silent.base, None, on_silent),
        ],
        sustained,
        sustained_ratio_of_all_fast: report::ratio(sustained.per_sec, end_to_end.sustained.per_sec),
        errors: bad.load.errors,
        post_to_row,
        post_to_row_p99_ratio_of_all_fast: report::ratio(
            post_to_row.p99_ms,
            end_to_end.post_to_row.p99_ms,
        ),
        fast_post_to_probed: rows::delays(fixture, rows::POST_TO_PROBED, Some(&media.base)).await?,
        probes: bad.probes,
        open_circuits: bad.open_circuits,
        dead_letters: fixture.count("SELECT count(*) FROM dead_letters").await?,
        cpu_by_group: bad_cpu.by_group(services),
    };

    progress(n, "calls and chats together");
    fixture.truncate_calls().await?;
    let (mixed_calls, _) = bodies::generate(n, &spec("mix", 6));
    let chats = crate::chats::generate((n / 4).max(1), &operators, "chat", 7);
    let chat_target = Arc::new(Target {
        addr,
        path: format!("/api/v1/integrations/{}/text", fixture.integration_id),
        token: fixture.token.clone(),
    });
    let mixed = mixed::run(
        fixture,
        worker_addr,
        (target.clone(), mixed_calls),
        (chat_target, chats),
        concurrency,
        &both,
    )
    .await?;

    let worker_peak = drain.worker.stop().await?;
    // The bad hosts' retries and deferrals wait in the probe queues: not the next phases'.
    fixture.delete_probe_queues().await?;

    progress(n, "storage without the probe stage");
    fixture.truncate_calls().await?;
    let (refill_bodies, _) = bodies::generate(n, &spec("np", 4));
    let refill = load::run(target, Arc::new(refill_bodies), concurrency).await?;
    let stage_env = |worker_port, stages: &str| {
        let mut env = fixture.child_env(port, worker_port);
        env.push(("APP_WORKER__STAGES".to_owned(), stages.to_owned()));
        env
    };
    let calls_port = free_port()?;
    let served_before = media.probes();
    let storage = Drain::run(
        fixture,
        &stage_env(calls_port, "calls"),
        &logs.join(format!("{n}-worker-calls.log")),
        calls_port,
        refill.accepted,
        &gateway,
    )
    .await?;
    let storage_now = WorkerMetrics::at(storage.metrics.addr).await;
    let storage_alone = StorageAlone {
        drained: storage.rate,
        calls_per_batch: storage.calls_per_batch,
        probes_queued: storage.metrics.probes_queued(&storage_now),
        media_probes_served: media.probes() - served_before,
        ratio_of_raw_upsert: report::ratio(storage.rate.per_sec, raw.upsert.per_sec),
        cpu: storage.cpu.usage(storage.worker.pid()),
        cpu_by_group: storage.cpu.by_group(cpu::Services {
            gateway: gateway.pid(),
            worker: Some(storage.worker.pid()),
        }),
    };
    storage.worker.stop().await?;

    progress(n, "the probe stage alone");
    let probes_port = free_port()?;
    let served_before = media.probes();
    let probing = ProbeRun::run(
        fixture,
        &stage_env(probes_port, "probes"),
        &logs.join(format!("{n}-worker-probes.log")),
        probes_port,
        refill.accepted,
        &gateway,
    )
    .await?;
    let probing_now = WorkerMetrics::at(probing.metrics.addr).await;
    let probe_stage_alone = ProbeStageAlone {
        probed: probing.rate,
        ratio_of_raw_head: report::ratio(probing.rate.per_sec, raw.head.per_sec),
        media_probes_served: media.probes() - served_before,
        media_reachable_rows: rows::reachable(fixture).await?,
        probes: probing.metrics.outcomes(&probing_now),
        cpu: probing.cpu.usage(probing.worker.pid()),
        cpu_by_group: probing.cpu.by_group(cpu::Services {
            gateway: gateway.pid(),
            worker: Some(probing.worker.pid()),
        }),
    };
    probing.worker.stop().await?;

    let gateway_peak = gateway.stop().await?;
    Ok(SizeReport {
        calls: n,
        load_average_before,
        bodies: shape,
        gateway: gateway_report,
        raw,
        worker: worker_report,
        end_to_end,
        bad_hosts,
        mixed,
        storage_alone,
        probe_stage_alone,
        rss: Rss {
            gateway_peak_mb: report::kb_to_mb(gateway_peak),
            worker_peak_mb: report::kb_to_mb(worker_peak),
            gateway_end_to_end: Series::of_kb(&rss[0]),
            worker_end_to_end: Series::of_kb(&rss[1]),
        },
    })
}

/// From a wall-clock instant to a row's timestamp (one clock: the same machine).
fn between(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

pub(crate) async fn wait_ready(gateway: &Service, addr: SocketAddr) -> anyhow::Result<()> {
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

/// A port for a child to listen on: the kernel picks it, then it is released.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

/// With the time, to find a phase in the services' logs.
fn progress(n: usize, phase: &str) {
    let at = Utc::now().format("%H:%M:%S%.3f");
    eprintln!("bench: {at} {n} calls: {phase}");
}
