//! The rejection summary: rejected records are logged one by one at DEBUG only, and summed up
//! at WARN at most once every [`SUMMARY_EVERY`]:
//!
//! `1,204 records rejected in the last 10 s: 1,100 items[].total_price, 104 not JSON; latest at
//! partition 3 offset 88120`
//!
//! The first rejection after a quiet spell is written at once, so an operator sees a problem
//! start; the rest of a flood waits for the next summary. Reasons are grouped by field path
//! with item indices left out, or by kind for a record that is not an object at all; a hostile
//! producer can invent any number of unknown fields, so at most [`MAX_GROUPS`] groups are kept
//! and the rest count as "other".

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use crate::order::Rejection;

/// Least time between two summary lines.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Most reason groups one summary holds.
const MAX_GROUPS: usize = 16;

/// Groups named in a summary line; the rest are summed up as "N more".
const GROUPS_SHOWN: usize = 5;

/// Rejections since the last summary line.
#[derive(Debug, Default)]
pub struct RejectionSummary {
    /// When the last line was written; `None` before the first.
    last_line: Option<Instant>,
    /// Rejections not yet in a line.
    pending: u64,
    /// Pending rejections by group.
    by_group: BTreeMap<String, u64>,
    /// The last pending rejection's partition and offset.
    latest: (i32, i64),
}

/// One summary line, to be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryLine {
    /// Rejections it covers.
    pub n_rejected: u64,
    /// The time they came in, in whole seconds (at least 1).
    pub window_seconds: u64,
    /// The line itself.
    pub text: String,
    /// The latest one's partition.
    pub latest_partition: i32,
    /// The latest one's offset.
    pub latest_offset: i64,
}

impl SummaryLine {
    /// Writes the line at WARN.
    pub fn log(&self) {
        tracing::warn!(
            rejected = self.n_rejected,
            window_seconds = self.window_seconds,
            latest_partition = self.latest_partition,
            latest_offset = self.latest_offset,
            "{}",
            self.text
        );
    }
}

impl RejectionSummary {
    /// Adds one rejection; returns a line when one is due.
    pub fn add(
        &mut self,
        rejection: &Rejection,
        partition: i32,
        offset: i64,
        now: Instant,
    ) -> Option<SummaryLine> {
        self.pending += 1;
        self.latest = (partition, offset);
        let group = group_of(rejection);
        if self.by_group.len() < MAX_GROUPS || self.by_group.contains_key(&group) {
            *self.by_group.entry(group).or_default() += 1;
        } else {
            *self.by_group.entry("other".into()).or_default() += 1;
        }
        self.flush(now, false)
    }

    /// The pending rejections as a line, if there are any and a line is due (or `force`).
    pub fn flush(&mut self, now: Instant, force: bool) -> Option<SummaryLine> {
        if self.pending == 0 {
            return None;
        }
        let due = self
            .last_line
            .is_none_or(|at| now.duration_since(at) >= SUMMARY_EVERY);
        if !due && !force {
            return None;
        }
        let window_seconds = self
            .last_line
            .map_or(SUMMARY_EVERY, |at| now.duration_since(at))
            .as_secs()
            .max(1);
        let mut groups: Vec<(String, u64)> =
            std::mem::take(&mut self.by_group).into_iter().collect();
        groups.sort_by(|(left_name, left), (right_name, right)| {
            right.cmp(left).then_with(|| left_name.cmp(right_name))
        });
        let mut shown: Vec<String> = groups
            .iter()
            .take(GROUPS_SHOWN)
            .map(|(group, n)| format!("{} {group}", thousands(*n)))
            .collect();
        if groups.len() > GROUPS_SHOWN {
            let rest: u64 = groups[GROUPS_SHOWN..].iter().map(|(_, n)| n).sum();
            shown.push(format!(
                "{} of {} more kinds",
                thousands(rest),
                groups.len() - GROUPS_SHOWN
            ));
        }
        let (partition, offset) = self.latest;
        let text = format!(
            "{} record{} rejected in the last {window_seconds} s: {}; latest at partition {partition} offset {offset}",
            thousands(self.pending),
            if self.pending == 1 { "" } else { "s" },
            shown.join(", ")
        );
        let line = SummaryLine {
            n_rejected: self.pending,
            window_seconds,
            text,
            latest_partition: partition,
            latest_offset: offset,
        };
        self.pending = 0;
        self.last_line = Some(now);
        Some(line)
    }
}

/// The group a rejection is summed up under: its field path without item indices
/// (`items[].total_price`), or for the record as a whole, what it is.
fn group_of(rejection: &Rejection) -> String {
    match rejection.kind() {
        "not_json" => "not JSON".into(),
        "not_utf8" => "not UTF-8".into(),
        "empty" => "empty".into(),
        "too_large" => "too large".into(),
        "unknown_field" => "unknown field".into(),
        "postgres_refused" => "refused by PostgreSQL".into(),
        _ if rejection.path == "." => "not an order object".into(),
        _ => without_indices(&rejection.path),
    }
}

fn without_indices(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_index = false;
    for character in path.chars() {
        match character {
            '[' => {
                in_index = true;
                out.push('[');
            }
            ']' => {
                in_index = false;
                out.push(']');
            }
            _ if in_index => {}
            other => out.push(other),
        }
    }
    out
}

/// `1204` as `1,204`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(path: &str, rule: &str) -> Rejection {
        Rejection {
            path: path.into(),
            rule: rule.into(),
        }
    }

    #[test]
    fn numbers_and_paths_are_written_for_people() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1204), "1,204");
        assert_eq!(thousands(10_000_000), "10,000,000");
        assert_eq!(
            without_indices("items[12].total_price"),
            "items[].total_price"
        );
        assert_eq!(without_indices("payment.amount"), "payment.amount");
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_makes_one_line_per_interval() {
        let mut summary = RejectionSummary::default();
        let price = rejection(
            "items[3].total_price",
            "must equal price * (100 - sale) / 100",
        );
        let not_json = rejection(".", "expected value at line 1 column 1");
        let mut lines = Vec::new();
        for offset in 0..10_000 {
            let reason = if offset % 10 == 0 { &not_json } else { &price };
            lines.extend(summary.add(reason, 3, offset, Instant::now()));
        }
        assert_eq!(
            lines.len(),
            1,
            "the first rejection is told at once, the rest wait"
        );
        assert_eq!(lines[0].n_rejected, 1);
        assert!(
            summary.flush(Instant::now(), false).is_none(),
            "not due yet"
        );

        tokio::time::advance(SUMMARY_EVERY).await;
        let line = summary
            .flush(Instant::now(), false)
            .unwrap_or_else(|| panic!("a line is due after {SUMMARY_EVERY:?}"));
        assert_eq!(line.n_rejected, 9_999);
        assert_eq!(
            line.text,
            "9,999 records rejected in the last 10 s: 9,000 items[].total_price, \
             999 not JSON; latest at partition 3 offset 9999",
            "the first line told offset 0, not JSON"
        );
        assert!(
            summary.flush(Instant::now(), true).is_none(),
            "nothing pending"
        );
    }

    #[test]
    fn invented_fields_cannot_grow_the_summary() {
        let mut summary = RejectionSummary::default();
        let now = Instant::now();
        let _ = summary.add(
            &rejection(".", "expected value at line 1 column 1"),
            0,
            0,
            now,
        );
        for index in 0..1_000 {
            let path = format!("field_{index}");
            let _ = summary.add(&rejection(&path, "must not be empty"), 0, index, now);
        }
        assert!(summary.by_group.len() <= MAX_GROUPS + 1);
        let line = summary
            .flush(now, true)
            .unwrap_or_else(|| panic!("forced flush with rejections pending"));
        assert_eq!(line.n_rejected, 1_000);
        assert!(line.text.contains("more kinds"), "{}", line.text);
    }
}
