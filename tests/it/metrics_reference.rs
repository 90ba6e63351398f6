//! The README's metrics table against the names the service records: every metric in
//! `events::prometheus::names` has a row, and every row names a metric that exists, so the
//! reference cannot fall behind when an event gains a metric.

use std::collections::BTreeSet;
use std::path::Path;

/// The metric names in the README's "Metrics" table (the first column, between backticks).
fn documented_metrics(readme: &str) -> BTreeSet<String> {
    let section = readme
        .split("\n### Metrics\n")
        .nth(1)
        .unwrap_or_else(|| panic!("README.md has no \"### Metrics\" section"));
    let section = section.split("\n### ").next().unwrap_or(section);
    section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_string())
        .filter(|name| name.starts_with("orderstore_"))
        .collect()
}

/// The metric names the code declares: every `pub const NAME: &str = "orderstore_..";` of the
/// `names` module in `src/events/prometheus.rs`.
fn declared_metrics(source: &str) -> BTreeSet<String> {
    source
        .lines()
        .filter(|line| line.trim_start().starts_with("pub const "))
        .filter_map(|line| line.split('"').nth(1))
        .filter(|name| name.starts_with("orderstore_"))
        .map(str::to_string)
        .collect()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path))
        .unwrap_or_else(|error| panic!("cannot read {path}: {error}"))
}

#[test]
fn the_readme_documents_every_metric_and_no_other() {
    let documented = documented_metrics(&read("README.md"));
    let declared = declared_metrics(&read("src/events/prometheus.rs"));
    assert!(declared.len() >= 20, "too few metrics found: {declared:?}");
    let missing: Vec<&String> = declared.difference(&documented).collect();
    let unknown: Vec<&String> = documented.difference(&declared).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "README.md's metrics table is missing {missing:?} and names metrics the code does not \
         record: {unknown:?}"
    );
}

#[test]
fn the_table_reader_finds_rows_and_skips_other_sections() {
    let readme = "## Reference\n\n### Metrics\n\n| name | type |\n|---|---|\n\
                  | `orderstore_a_total` | counter |\n| `orderstore_b` | gauge |\n\n\
                  ### Logs\n\n| `orderstore_not_a_metric` | x |\n";
    let found: Vec<String> = documented_metrics(readme).into_iter().collect();
    assert_eq!(found, vec!["orderstore_a_total", "orderstore_b"]);
}
