//! The `orderstore` binary: settings, logs, signals, and the application. Everything else is
//! in the library, so tests build the same application.

use anyhow::Context;
use orderstore::app::Application;
use orderstore::config::Settings;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // A missing .env is fine: every setting has a default.
    if let Err(error) = dotenvy::dotenv() {
        if !error.not_found() {
            anyhow::bail!("cannot read .env: {error}");
        }
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("orderstore: {error}");
            std::process::exit(2);
        }
    };
    orderstore::telemetry::init(&settings.log_level, settings.log_format);

    let shutdown = CancellationToken::new();
    spawn_signal_handler(shutdown.clone()).context("cannot install signal handlers")?;
    let application = match Application::build(settings, shutdown).await {
        Ok(application) => application,
        Err(orderstore::app::StartError::Cancelled) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    application.run_until_stopped().await?;
    Ok(())
}

/// The first SIGINT or SIGTERM starts an orderly shutdown; a second one exits at once.
fn spawn_signal_handler(shutdown: CancellationToken) -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        for round in 0.. {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if round == 0 {
                tracing::info!("signal received, stopping; a second signal exits at once");
                shutdown.cancel();
            } else {
                tracing::warn!("second signal received, exiting at once");
                std::process::exit(130);
            }
        }
    });
    Ok(())
}
