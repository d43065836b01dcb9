use shared::config::Settings;

fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let _telemetry = shared::telemetry::init(&settings.log, "worker");
    settings.runtime.build()?.block_on(run(settings))
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let worker = worker::Worker::build(&settings).await?;
    tracing::info!(port = worker.port(), "worker metrics listening");
    worker.run_until_stopped(shutdown_signal()).await;
    tracing::info!("worker stopped");
    Ok(())
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing in-flight messages");
}
