//! `orderstore serve` (the default command): the service until a signal stops it.

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::app::{Application, StartError};
use crate::config::Settings;
use crate::shutdown::cancel_on_signals;

/// Starts the service and runs it until SIGINT or SIGTERM, then stops it in order. A stop
/// asked for before start-up finished is a clean exit.
pub async fn serve(settings: Settings) -> anyhow::Result<()> {
    crate::telemetry::init(&settings.log.level, settings.log.format);
    let shutdown = CancellationToken::new();
    cancel_on_signals(shutdown.clone()).context("cannot install signal handlers")?;
    let application = match Application::build(settings, shutdown).await {
        Ok(application) => application,
        Err(StartError::Cancelled) => return Ok(()),
        Err(error) => return Err(error.into()),
    };
    application.run_until_stopped().await?;
    Ok(())
}
