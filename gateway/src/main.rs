use shared::config::Settings;

fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let _telemetry = shared::telemetry::init(&settings.log, "gateway");
    settings.runtime.build()?.block_on(run(settings))
}

async fn run(settings: Settings) -> anyhow::Result<()> {
    let app = gateway::Application::build(settings).await?;
    tracing::info!(port = app.port(), "gateway listening");
    app.run_until_stopped(shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
