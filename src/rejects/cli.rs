//! `orderstore rejects`: the rejected records of `KAFKA_TOPIC` on the command line, read from
//! PostgreSQL (`DATABASE_URL`) by the same queries as `GET /rejects`, so the two and the table
//! always agree: `summary` (a count per kind, first and last seen), `list` (newest first,
//! filtered and paged like the API) and `show ID` (one record whole, its value as text or hex);
//! and `skip`, which lets one reject pass a partition `ON_REJECT=halt` stopped.

use std::fmt::Write as _;

use clap::Subcommand;

use super::http::MAX_LIMIT;
use crate::config::Settings;
use crate::store::postgres::rejects::{hex_text, RejectFilter, RejectRow};
use crate::store::postgres::Database;

/// What `orderstore rejects` shows.
#[derive(Debug, Clone, Subcommand)]
pub enum RejectsCommand {
    /// A count per kind of rejection, with the first and last seen (the default).
    Summary,
    /// Rejects, newest first.
    List {
        /// Only this kind (as `summary` names them), such as not_json.
        #[arg(long)]
        reason: Option<String>,
        /// Only this source partition.
        #[arg(long)]
        partition: Option<i32>,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Only rejects older than this id (the last id of the page before).
        #[arg(long)]
        before: Option<i64>,
    },
    /// One reject whole: where it came from, why, its key, headers and value.
    Show {
        /// Its id, as `list` shows it.
        id: i64,
        /// The value in hex, even when it is text.
        #[arg(long)]
        hex: bool,
    },
    /// Let the reject at PARTITION/OFFSET pass a partition that ON_REJECT=halt stopped,
    /// from the next start of the instance that owns it.
    Skip {
        /// Its source partition.
        #[arg(long)]
        partition: i32,
        /// Its source offset.
        #[arg(long)]
        offset: i64,
    },
}

/// Runs `command` against the database of `settings` and returns what to print.
pub async fn run(settings: &Settings, command: RejectsCommand) -> anyhow::Result<String> {
    let database = Database::new(
        settings.database.url.clone(),
        settings.database.tls.clone(),
        1,
        &settings.kafka.topic,
    );
    let printed = match command {
        RejectsCommand::Summary => summary(&database).await?,
        RejectsCommand::List {
            reason,
            partition,
            limit,
            before,
        } => {
            anyhow::ensure!(
                (1..=MAX_LIMIT).contains(&limit),
                "--limit must be from 1 to {MAX_LIMIT}"
            );
            let filter = RejectFilter {
                kind: reason,
                partition,
                before,
                limit,
            };
            list(&database, &filter).await?
        }
        RejectsCommand::Show { id, hex } => show(&database, id, hex).await?,
        RejectsCommand::Skip { partition, offset } => {
            anyhow::ensure!(
                database.approve_skip(partition, offset).await?,
                "no reject is recorded at partition {partition}, offset {offset} of this topic"
            );
            format!(
                "the reject at partition {partition}, offset {offset} will pass: restart the \
                 instance that owns the partition (a rolling restart of the fleet) to resume it\n"
            )
        }
    };
    database.close();
    Ok(printed)
}

async fn summary(database: &Database) -> anyhow::Result<String> {
    let summary = database.reject_summary().await?;
    let mut out = format!(
        "{} rejects of this topic, {} not yet in the dead-letter topic\n",
        summary.total, summary.pending
    );
    if !summary.kinds.is_empty() {
        let _ = writeln!(
            out,
            "{:<18} {:>10}  {:<25}  last seen",
            "reason", "count", "first seen"
        );
    }
    for kind in &summary.kinds {
        let _ = writeln!(
            out,
            "{:<18} {:>10}  {:<25}  {}",
            kind.kind,
            kind.count,
            kind.first_seen.to_rfc3339(),
            kind.last_seen.to_rfc3339()
        );
    }
    Ok(out)
}

async fn list(database: &Database, filter: &RejectFilter) -> anyhow::Result<String> {
    let rows = database.list_rejects(filter).await?;
    let mut out = format!(
        "{:>10} {:>9} {:>12}  {:<16} {:<25}  why\n",
        "id", "partition", "offset", "reason", "rejected at"
    );
    for row in &rows {
        let _ = writeln!(
            out,
            "{:>10} {:>9} {:>12}  {:<16} {:<25}  {}",
            row.id,
            row.partition,
            row.offset,
            row.kind,
            row.rejected_at.to_rfc3339(),
            one_line(&row.reason, 100)
        );
    }
    if rows.len() == filter.limit {
        if let Some(last) = rows.last() {
            let _ = writeln!(out, "more: --before {}", last.id);
        }
    }
    Ok(out)
}

async fn show(database: &Database, id: i64, in_hex: bool) -> anyhow::Result<String> {
    let Some(detail) = database.reject_by_id(id).await? else {
        anyhow::bail!("no reject with id {id} in this topic");
    };
    let RejectRow {
        partition,
        offset,
        kind,
        reason,
        rejected_at,
        published_at,
        size,
        ..
    } = &detail.row;
    let mut out = String::new();
    let _ = writeln!(out, "reject {id}: partition {partition}, offset {offset}");
    let _ = writeln!(out, "reason:    {kind}: {reason}");
    let _ = writeln!(out, "rejected:  {}", rejected_at.to_rfc3339());
    let published = published_at.map_or("not yet".to_string(), |at| at.to_rfc3339());
    let _ = writeln!(out, "published: {published}");
    let _ = writeln!(
        out,
        "key:       {}",
        detail.key.as_deref().map_or("none".into(), text_or_hex)
    );
    for (name, value) in &detail.headers {
        let _ = writeln!(out, "header:    {name} = {}", text_or_hex(value));
    }
    let kept = if detail.kept_in_hex {
        " (PostgreSQL refused the bytes; they were kept in hex)"
    } else {
        ""
    };
    let _ = writeln!(out, "value:     {size} bytes{kept}");
    match std::str::from_utf8(&detail.value) {
        Ok(text) if !in_hex => out.push_str(text),
        _ => out.push_str(&hex_text(&detail.value)),
    }
    out.push('\n');
    Ok(out)
}

/// Bytes as text when they are UTF-8, else as `hex:` and their digits.
fn text_or_hex(bytes: &[u8]) -> String {
    std::str::from_utf8(bytes).map_or_else(|_| format!("hex:{}", hex_text(bytes)), str::to_string)
}

/// `text` on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_print_as_text_or_hex() {
        assert_eq!(text_or_hex(b"abc"), "abc");
        assert_eq!(text_or_hex(b"\xff\x00"), "hex:ff00");
        assert_eq!(one_line("a\nb", 10), "a b");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }
}
