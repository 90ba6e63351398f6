//! Drawing the status: one function that renders a [`View`] into any area of a ratatui
//! [`Buffer`], so that the live terminal, `--once`'s plain text and the tests all show the
//! same screen. It only draws; fetching and the keyboard live in `top.rs`.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Paragraph, Row, Sparkline, Table, Widget, Wrap};

use super::status::{Health, Status};

/// What the screen shows: the last status fetched, and why the latest fetch failed if it did,
/// so that a server that stops answering leaves its last figures on screen under the reason.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// The URL the status comes from.
    pub url: String,
    /// The last status fetched, if any.
    pub status: Option<Status>,
    /// Why the latest fetch failed; none when it succeeded.
    pub fetch_error: Option<String>,
    /// The refresh interval of the live screen, whose header says how to quit; none for
    /// `--once`'s single frame.
    pub refresh: Option<std::time::Duration>,
}

/// Rows of the header: title, health, and the fetch line, which may wrap onto a fourth.
const HEADER_ROWS: u16 = 4;
/// Rows of the ingest block: a border, two sparklines of two rows with their titles.
const INGEST_ROWS: u16 = 8;
/// The width `--once` renders at.
pub const PLAIN_WIDTH: u16 = 110;

/// How many rows the whole screen needs to show every partition, instance and reject, for
/// `--once`, which is not bound by a terminal's height.
pub fn rows_needed(view: &View) -> u16 {
    let Some(status) = &view.status else {
        return HEADER_ROWS;
    };
    let partitions = u16::try_from(status.partitions.len()).unwrap_or(u16::MAX / 4);
    HEADER_ROWS
        .saturating_add(INGEST_ROWS)
        .saturating_add(partitions.saturating_add(3))
        .saturating_add(bottom_rows(status))
}

/// Rows of the bottom block: the tallest of fleet, figures and rejects.
fn bottom_rows(status: &Status) -> u16 {
    let fleet = status.fleet.len() + 2;
    let figures = 6 + 2;
    let rejects = status.rejects.by_reason.len() + status.rejects.latest.len() + 3 + 2;
    u16::try_from(fleet.max(figures).max(rejects)).unwrap_or(u16::MAX / 4)
}

/// Renders `view` into `area` of `buffer`.
pub fn render(view: &View, area: Rect, buffer: &mut Buffer) {
    let Some(status) = &view.status else {
        let [header, _] =
            Layout::vertical([Constraint::Length(HEADER_ROWS), Constraint::Fill(1)]).areas(area);
        render_header(view, None, header, buffer);
        return;
    };
    let partition_rows = u16::try_from(status.partitions.len())
        .unwrap_or(u16::MAX / 4)
        .saturating_add(3);
    let [header, ingest, partitions, bottom] = Layout::vertical([
        Constraint::Length(HEADER_ROWS),
        Constraint::Length(INGEST_ROWS),
        Constraint::Min(partition_rows.min(6)),
        Constraint::Length(bottom_rows(status)),
    ])
    .areas(area);
    render_header(view, Some(status), header, buffer);
    render_ingest(status, ingest, buffer);
    render_partitions(status, partitions, buffer);
    let [fleet, figures, rejects] = Layout::horizontal([
        Constraint::Percentage(25),
        Constraint::Percentage(30),
        Constraint::Percentage(45),
    ])
    .areas(bottom);
    render_fleet(status, fleet, buffer);
    render_figures(status, figures, buffer);
    render_rejects(status, rejects, buffer);
}

/// Green for good news, red for bad.
fn verdict(good: bool, good_text: &str, bad_text: &str) -> Span<'static> {
    if good {
        Span::styled(good_text.to_owned(), Style::new().fg(Color::Green))
    } else {
        Span::styled(
            bad_text.to_owned(),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )
    }
}

/// A dependency's health: "ok", or "error: <reason>".
fn health_spans(name: &str, health: &Health) -> Vec<Span<'static>> {
    let mut spans = vec![Span::raw(format!("{name} "))];
    if health.ok {
        spans.push(verdict(true, "ok", ""));
    } else {
        let reason = health.error.as_deref().unwrap_or("no answer");
        spans.push(verdict(false, "", &format!("error: {reason}")));
    }
    spans
}

/// Whole seconds as "1h 2m 3s".
fn uptime_text(seconds: Option<f64>) -> String {
    match seconds {
        Some(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            humantime::format_duration(std::time::Duration::from_secs(seconds as u64)).to_string()
        }
        _ => "?".to_owned(),
    }
}

/// A number that may be unknown.
fn or_dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

/// Milliseconds with one decimal, or a dash when unknown.
fn milliseconds(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| format!("{value:.1} ms"))
}

fn render_header(view: &View, status: Option<&Status>, area: Rect, buffer: &mut Buffer) {
    let mut lines = Vec::new();
    let mut title = vec![Span::styled(
        "orderstore top",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    title.push(Span::raw(format!("  {}", view.url)));
    if let Some(status) = status {
        title.push(Span::raw(format!(
            "  instance {}  ",
            status.instance.as_deref().unwrap_or("?")
        )));
        title.push(verdict(status.ready, "ready", "NOT READY"));
        title.push(Span::raw(format!(
            "  up {}  ",
            uptime_text(status.uptime_seconds)
        )));
        title.push(verdict(status.restore.restored, "restored", "restoring"));
    }
    lines.push(Line::from(title));
    if let Some(status) = status {
        let mut health = health_spans("PostgreSQL", &status.postgres);
        health.push(Span::raw("   "));
        health.extend(health_spans("Kafka", &status.kafka));
        lines.push(Line::from(health));
    } else {
        lines.push(Line::raw(""));
    }
    lines.push(match &view.fetch_error {
        Some(error) => Line::from(verdict(
            false,
            "",
            &format!("cannot fetch the status: {error} (retrying)"),
        )),
        None if status.is_none() => Line::raw("fetching the status…"),
        None => match view.refresh {
            Some(refresh) => Line::raw(format!(
                "refreshing every {}; q or Ctrl-C quits",
                humantime::format_duration(refresh)
            )),
            None => Line::raw(""),
        },
    });
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(area, buffer);
}

fn render_ingest(status: &Status, area: Rect, buffer: &mut Buffer) {
    let ingest = &status.ingest;
    let block = Block::new().borders(Borders::ALL).title(" ingest ");
    let inner = block.inner(area);
    block.render(area, buffer);
    let [totals, charts] =
        Layout::horizontal([Constraint::Length(24), Constraint::Fill(1)]).areas(inner);
    let totals_lines = vec![
        Line::raw(format!("consumed   {}", ingest.consumed_total)),
        Line::raw(format!("stored     {}", ingest.stored_total)),
        Line::raw(format!("rejected   {}", ingest.rejected_total)),
        Line::raw(format!("duplicates {}", ingest.duplicates_total)),
    ];
    Paragraph::new(totals_lines).render(totals, buffer);
    let [stored_title, stored_chart, rejected_title, rejected_chart] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Length(2),
    ])
    .areas(charts);
    // The newest samples that fit, one column each, the newest at the right.
    let columns = usize::from(charts.width);
    let recent = &ingest.per_second[ingest.per_second.len().saturating_sub(columns)..];
    let stored: Vec<u64> = recent.iter().map(|sample| sample.stored).collect();
    let rejected: Vec<u64> = recent.iter().map(|sample| sample.rejected).collect();
    let newest = |values: &[u64]| values.last().copied().unwrap_or(0);
    Paragraph::new(format!(
        "stored/s {}  (peak {} over {} s)",
        newest(&stored),
        stored.iter().max().copied().unwrap_or(0),
        stored.len()
    ))
    .render(stored_title, buffer);
    Sparkline::default()
        .data(&stored)
        .style(Style::new().fg(Color::Green))
        .render(stored_chart, buffer);
    Paragraph::new(format!(
        "rejected/s {}  (peak {})",
        newest(&rejected),
        rejected.iter().max().copied().unwrap_or(0)
    ))
    .render(rejected_title, buffer);
    Sparkline::default()
        .data(&rejected)
        .style(Style::new().fg(Color::Red))
        .render(rejected_chart, buffer);
}

fn render_partitions(status: &Status, area: Rect, buffer: &mut Buffer) {
    let header = Row::new([
        "partition",
        "owner",
        "stored offset",
        "high watermark",
        "lag",
        "group lag",
        "state",
        "since progress",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = status.partitions.iter().map(|partition| {
        let state = if partition.halted {
            Cell::from(Span::styled(
                "HALTED",
                Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
            ))
        } else {
            Cell::from("running")
        };
        Row::new([
            Cell::from(partition.partition.to_string()),
            Cell::from(partition.owner.clone().unwrap_or_else(|| "-".to_owned())),
            Cell::from(or_dash(partition.stored_offset)),
            Cell::from(or_dash(partition.high_watermark)),
            Cell::from(or_dash(partition.lag)),
            Cell::from(or_dash(partition.group_lag)),
            state,
            Cell::from(
                partition
                    .seconds_since_progress
                    .map_or_else(|| "-".to_owned(), |seconds| format!("{seconds:.1} s")),
            ),
        ])
    });
    let widths = [
        Constraint::Length(9),
        Constraint::Fill(2),
        Constraint::Length(14),
        Constraint::Length(14),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(8),
        Constraint::Length(14),
    ];
    let title = format!(" partitions ({}) ", status.partitions.len());
    Widget::render(
        Table::new(rows, widths)
            .header(header)
            .block(Block::new().borders(Borders::ALL).title(title)),
        area,
        buffer,
    );
}

fn render_fleet(status: &Status, area: Rect, buffer: &mut Buffer) {
    let lines: Vec<Line> = status
        .fleet
        .iter()
        .map(|member| {
            let partitions: Vec<String> =
                member.partitions.iter().map(ToString::to_string).collect();
            Line::raw(format!("{}: {}", member.instance, partitions.join(" ")))
        })
        .collect();
    let title = format!(" fleet ({}) ", status.fleet.len());
    Paragraph::new(lines)
        .block(Block::new().borders(Borders::ALL).title(title))
        .render(area, buffer);
}

fn render_figures(status: &Status, area: Rect, buffer: &mut Buffer) {
    let http = &status.http;
    let lines = vec![
        Line::raw(format!("orders in memory {}", status.memory.orders)),
        Line::raw(""),
        Line::raw(format!("HTTP {:.1} requests/s", http.requests_per_second)),
        Line::raw(format!("p50 {}", milliseconds(http.p50_ms))),
        Line::raw(format!("p99 {}", milliseconds(http.p99_ms))),
    ];
    Paragraph::new(lines)
        .block(Block::new().borders(Borders::ALL).title(" memory, HTTP "))
        .render(area, buffer);
}

fn render_rejects(status: &Status, area: Rect, buffer: &mut Buffer) {
    let rejects = &status.rejects;
    let mut lines = Vec::new();
    if rejects.by_reason.is_empty() {
        lines.push(Line::raw("none in the last hour"));
    }
    for (reason, count) in &rejects.by_reason {
        lines.push(Line::raw(format!("{reason}: {count}")));
    }
    if let Some(topic) = &rejects.dead_letter_topic {
        lines.push(Line::raw(format!(
            "{} not yet in {topic}",
            or_dash(rejects.pending)
        )));
    }
    if !rejects.latest.is_empty() {
        lines.push(Line::styled(
            "latest",
            Style::new().add_modifier(Modifier::BOLD),
        ));
    }
    for reject in &rejects.latest {
        lines.push(Line::raw(format!(
            "#{} {} p{}@{} {}",
            reject.id,
            reject.reason,
            reject.partition,
            reject.offset,
            reject.rejected_at.as_deref().unwrap_or("")
        )));
    }
    Paragraph::new(lines)
        .block(
            Block::new()
                .borders(Borders::ALL)
                .title(" rejects (last hour) "),
        )
        .render(area, buffer);
}

/// The screen as plain text, for `--once`: every row of the buffer, trailing blanks cut.
pub fn plain_text(view: &View) -> String {
    let area = Rect::new(0, 0, PLAIN_WIDTH, rows_needed(view));
    let mut buffer = Buffer::empty(area);
    render(view, area, &mut buffer);
    buffer_text(&buffer)
}

/// The text of `buffer`, row by row.
pub fn buffer_text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut text = String::new();
    for y in area.top()..area.bottom() {
        let mut row = String::new();
        for x in area.left()..area.right() {
            row.push_str(buffer[(x, y)].symbol());
        }
        text.push_str(row.trim_end());
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;

    /// The contract's example with a halted partition, one with no owner, and Kafka down.
    const SAMPLE: &str = include_str!("sample_status.json");

    fn sample_view() -> View {
        let status: Status =
            serde_json::from_str(SAMPLE).unwrap_or_else(|error| panic!("bad sample: {error}"));
        View {
            url: "http://127.0.0.1:8080".to_owned(),
            status: Some(status),
            fetch_error: None,
            refresh: None,
        }
    }

    /// The screen of `view` on a terminal of `width` by `height`, as text.
    fn screen_text(view: &View, width: u16, height: u16) -> String {
        let mut terminal = Terminal::new(TestBackend::new(width, height))
            .unwrap_or_else(|error| panic!("{error}"));
        terminal
            .draw(|frame| render(view, frame.area(), frame.buffer_mut()))
            .unwrap_or_else(|error| panic!("{error}"));
        buffer_text(terminal.backend().buffer())
    }

    fn assert_shows(screen: &str, expected: &[&str]) {
        for text in expected {
            assert!(
                screen.contains(text),
                "no {text:?} on the screen:\n{screen}"
            );
        }
    }

    #[test]
    fn the_screen_shows_the_figures_of_the_status() {
        let screen = screen_text(&sample_view(), 120, 40);
        assert_shows(
            &screen,
            &[
                "instance orderstore-1",
                "ready",
                "up 1h 2m 3s",
                "PostgreSQL ok",
                "Kafka error: broker 127.0.0.1:9092 refused the connection",
                "consumed   1000",
                "stored     990",
                "rejected   10",
                "duplicates 4",
                "stored/s 118  (peak 118 over 3 s)",
                "rejected/s 2  (peak 3)",
                "partitions (3)",
                "orders in memory 8200",
                "HTTP 12.0 requests/s",
                "p50 0.3 ms",
                "p99 1.2 ms",
                "not_json: 3",
                "field_rule: 7",
                "2 not yet in orders.rejects",
                "#12 field_rule p3@88",
                "orderstore-1: 0 2",
                "orderstore-2: 1",
            ],
        );
        assert!(!screen.contains("NOT READY"), "{screen}");
    }

    #[test]
    fn each_partition_row_shows_owner_offsets_lag_group_lag_state_and_progress() {
        let screen = screen_text(&sample_view(), 120, 40);
        // The words of each row, without the table's borders.
        let rows: Vec<String> = screen
            .lines()
            .map(|line| {
                line.replace('│', " ")
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let row_of = |partition: &str| {
            rows.iter()
                .find(|row| row.starts_with(partition))
                .unwrap_or_else(|| panic!("no row of partition {partition:?}:\n{screen}"))
                .as_str()
        };
        assert_eq!(row_of("0 "), "0 orderstore-1 120 120 0 2 running 1.5 s");
        assert_eq!(row_of("1 "), "1 orderstore-2 77 342 265 - HALTED 61.0 s");
        assert_eq!(row_of("2 "), "2 - - - - - running -");
    }

    #[test]
    fn a_failed_fetch_is_shown_above_the_last_figures() {
        let mut view = sample_view();
        view.fetch_error = Some("401 Unauthorized: the bearer token is wrong".to_owned());
        let screen = screen_text(&view, 120, 40);
        assert_shows(
            &screen,
            &[
                "cannot fetch the status: 401 Unauthorized: the bearer token is wrong (retrying)",
                "stored     990",
            ],
        );
        // A reason longer than the terminal is wide wraps instead of being cut.
        view.fetch_error = Some(format!(
            "the end of a long reason is {}here",
            "-".repeat(80)
        ));
        assert_shows(&screen_text(&view, 100, 40), &["here (retrying)"]);
        let first_view = View {
            url: "http://127.0.0.1:8080".to_owned(),
            status: None,
            fetch_error: Some("cannot connect to 127.0.0.1:8080: refused".to_owned()),
            refresh: Some(std::time::Duration::from_secs(1)),
        };
        assert_shows(
            &plain_text(&first_view),
            &["cannot fetch the status: cannot connect to 127.0.0.1:8080: refused"],
        );
    }

    #[test]
    fn the_plain_text_holds_every_partition_and_reject() {
        let text = plain_text(&sample_view());
        assert_shows(&text, &["HALTED", "#12 field_rule", "orderstore-2: 1"]);
        assert!(text
            .lines()
            .all(|line| line.chars().count() <= usize::from(PLAIN_WIDTH)));
    }
}
