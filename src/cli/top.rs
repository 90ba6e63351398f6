//! `orderstore top`: the status page in a terminal, for someone on a server with only SSH. It
//! reads `GET /status.json` of a URL every interval and draws it with ratatui; `--once` prints
//! one frame as plain text and exits, for scripts and tests.
//!
//! `status.rs` is what the JSON says, `fetch.rs` gets it, `render.rs` draws it; this file
//! holds the options and the loop: the refresh timer, the keyboard and the terminal.

mod fetch;
mod render;
mod status;

use std::process::ExitCode;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyCode, KeyEventKind, KeyModifiers};
use futures_util::StreamExt;

use crate::config::Settings;
use crate::secret::Secret;

use fetch::StatusSource;
use render::View;

/// The shortest refresh interval: `--interval 0s` means as often as is reasonable.
const SHORTEST_INTERVAL: Duration = Duration::from_millis(100);

/// What `orderstore top` was asked, before the defaults are filled in from the settings.
#[derive(Debug)]
pub struct TopOptions {
    /// The service's base URL; none means this machine's `HTTP_ADDR` port.
    pub url: Option<String>,
    /// The bearer token; none means `ORDERSTORE_TOKEN`, then the first of `HTTP_AUTH_TOKENS`.
    pub token: Option<String>,
    /// A PEM file of the CA that signed the server's certificate; none means the system roots.
    pub ca_file: Option<String>,
    /// How often the screen refreshes.
    pub interval: Duration,
    /// Print one frame as text and exit.
    pub once: bool,
}

/// Runs `orderstore top`. With `--once`, exits 0 when the status was fetched and printed, 1
/// with the reason on stderr otherwise; the live screen exits 0 when q or Ctrl-C is pressed.
pub async fn top(settings: &Settings, options: TopOptions) -> anyhow::Result<ExitCode> {
    let url = options
        .url
        .unwrap_or_else(|| super::local_service_url(settings))
        .trim_end_matches('/')
        .to_owned();
    let token = options
        .token
        .or_else(token_from_environment)
        .map(Secret::new);
    let source = match StatusSource::new(&url, token, options.ca_file.as_deref()) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("orderstore top: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if options.once {
        return Ok(once(&source).await);
    }
    // A zero interval would ask the server without pause (and tokio refuses it).
    live(&source, options.interval.max(SHORTEST_INTERVAL)).await?;
    Ok(ExitCode::SUCCESS)
}

/// `ORDERSTORE_TOKEN`, or the first of the server's own `HTTP_AUTH_TOKENS` when top runs with
/// the service's environment.
fn token_from_environment() -> Option<String> {
    let non_empty = |value: String| {
        let value = value.trim().to_owned();
        (!value.is_empty()).then_some(value)
    };
    std::env::var("ORDERSTORE_TOKEN")
        .ok()
        .and_then(non_empty)
        .or_else(super::first_http_token)
}

/// Fetches once and prints the frame, or the reason it could not.
async fn once(source: &StatusSource) -> ExitCode {
    match source.fetch().await {
        Ok(status) => {
            let view = View {
                url: source.url.clone(),
                status: Some(status),
                fetch_error: None,
                refresh: None,
            };
            print!("{}", render::plain_text(&view));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("orderstore top: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The live screen: refreshes every `interval` until q or Ctrl-C. `ratatui::init` enters the
/// alternate screen and raw mode and restores the terminal on a panic; `ratatui::restore` does
/// so on every way out of here.
async fn live(source: &StatusSource, interval: Duration) -> anyhow::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = refresh_until_quit(&mut terminal, source, interval).await;
    ratatui::restore();
    result
}

async fn refresh_until_quit(
    terminal: &mut ratatui::DefaultTerminal,
    source: &StatusSource,
    interval: Duration,
) -> anyhow::Result<()> {
    let mut keyboard = EventStream::new();
    let mut view = View {
        url: source.url.clone(),
        refresh: Some(interval),
        ..View::default()
    };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        terminal.draw(|frame| render::render(&view, frame.area(), frame.buffer_mut()))?;
        tokio::select! {
            _ = ticks.tick() => {}
            input = next_input(&mut keyboard) => match input {
                Input::Quit => return Ok(()),
                Input::Redraw => continue,
            },
        }
        // A slow server must not keep q from quitting: the fetch races the keyboard.
        tokio::select! {
            fetched = source.fetch() => match fetched {
                Ok(status) => {
                    view.status = Some(status);
                    view.fetch_error = None;
                }
                Err(error) => view.fetch_error = Some(error.to_string()),
            },
            () = quit_pressed(&mut keyboard) => return Ok(()),
        }
    }
}

/// What a terminal event asks of the screen.
#[derive(Debug, PartialEq, Eq)]
enum Input {
    /// q, Esc or Ctrl-C (raw mode turns Ctrl-C into a key), or the terminal is gone.
    Quit,
    /// A resize or another key: draw again.
    Redraw,
}

/// The next terminal event, as what it asks.
async fn next_input(keyboard: &mut EventStream) -> Input {
    match keyboard.next().await {
        Some(Ok(Event::Key(key))) if key.kind == KeyEventKind::Press => {
            let control_c =
                key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
            if control_c || matches!(key.code, KeyCode::Char('q') | KeyCode::Esc) {
                Input::Quit
            } else {
                Input::Redraw
            }
        }
        Some(Ok(_)) => Input::Redraw,
        Some(Err(_)) | None => Input::Quit,
    }
}

/// Waits for q or Ctrl-C, passing over other events: the screen is drawn again after the
/// fetch anyway.
async fn quit_pressed(keyboard: &mut EventStream) {
    while next_input(keyboard).await == Input::Redraw {}
}
