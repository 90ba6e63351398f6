//! The settings are written down three times: in the code ([`Settings::from_lookup`] and the
//! defaults it falls back on), in `.env`, and in the README's settings table. These tests keep
//! the three equal, so that a user who reads either document learns what the service does.
//!
//! For every variable they check that the code reads it, that the README's table has a row for
//! it and that `.env` lists it, and the reverse: neither document names a variable the code does
//! not read, and neither names one twice. The variables the code reads are the names it asks
//! its lookup for when the environment is empty. Today every variable is read whatever the
//! others say, so that is all of them; a variable read only when another is set would be
//! reported as one the code does not read.
//!
//! Values are compared in two ways. The README's default and `.env`'s value must be the same
//! text, once the README's cell is normalised (below): the table documents `.env`, and two
//! spellings of one duration would only make a reader wonder. Each of them must also mean the
//! code's default, which has no text of its own: the settings read with only that variable set
//! to the documented value must equal the settings read with nothing set, compared by their
//! derived `Debug`, as the service would read them (an empty value counts as unset, `30days`
//! and `720h` are the same duration).
//!
//! The README's table has the columns `variable | default | meaning`. The first cell names one
//! or more variables, each in backticks, separated by commas; they share the row's default. The
//! default cell is either the value in backticks, exactly as `.env` writes it, or, for a
//! variable whose default is empty, nothing or words without backticks that say what an empty
//! value means ("empty (off)", "host name and a random suffix"); both stand for the empty
//! value. Anything else in that cell is reported rather than guessed at.
//!
//! What they cannot see: an empty value always reads as the code's default, so a variable that
//! both documents call empty passes even if the code has a non-empty default for it. Telling
//! the two apart would need the code's defaults as text, which the reader does not expose.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use super::Settings;

/// `.env` as the service reads it.
const DOT_ENV: &str = include_str!("../../.env");

/// The README, whose "Settings" section holds the table.
const README: &str = include_str!("../../README.md");

/// The heading of the README section that holds the settings table.
const SETTINGS_HEADING: &str = "## Settings";

/// Every variable [`Settings::from_lookup`] asks for when nothing is set, and the settings it
/// then returns, as their pretty `Debug`.
fn variables_the_code_reads() -> (BTreeSet<String>, String) {
    let asked = RefCell::new(BTreeSet::new());
    let defaults = Settings::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_string());
        None
    })
    .unwrap_or_else(|error| panic!("the code's defaults are invalid: {error}"));
    (asked.into_inner(), format!("{defaults:#?}"))
}

/// The variables `.env` sets and their values, read by dotenvy as the service reads them, and
/// every problem with the file (a line dotenvy refuses, a variable set twice).
fn dot_env_values(file: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut problems = Vec::new();
    for item in dotenvy::from_read_iter(file.as_bytes()) {
        match item {
            Ok((name, value)) => {
                if values
                    .insert(name.clone(), value.trim().to_string())
                    .is_some()
                {
                    problems.push(format!(".env sets {name} twice"));
                }
            }
            Err(error) => problems.push(format!(".env cannot be read: {error}")),
        }
    }
    (values, problems)
}

/// The README table's default of each variable, and every problem with its rows.
type ReadmeTable = (BTreeMap<String, String>, Vec<String>);

/// The default the README's table gives each variable, normalised as the module comment says,
/// and every problem with its rows (a cell that is not in the row format, a variable named
/// twice); or, when there is no table to read (none, or a header other than `variable |
/// default | meaning`), that problem alone.
fn readme_defaults(readme: &str) -> Result<ReadmeTable, String> {
    let section: Vec<&str> = readme
        .lines()
        .skip_while(|line| line.trim_end() != SETTINGS_HEADING)
        .skip(1)
        .take_while(|line| !line.starts_with("## "))
        .collect();
    let rows: Vec<&str> = section
        .iter()
        .map(|line| line.trim())
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .collect();
    let Some((header, rows)) = rows.split_first() else {
        return Err(format!(
            "README.md has no table under \"{SETTINGS_HEADING}\""
        ));
    };
    if cells(header) != ["variable", "default", "meaning"] {
        return Err(format!(
            "README.md's settings table must have the columns | variable | default | meaning |, \
             it has {header}"
        ));
    }
    let mut defaults = BTreeMap::new();
    let mut problems = Vec::new();
    for row in rows.iter().filter(|row| !is_separator(row)) {
        let row_cells = cells(row);
        let [names, default, _meaning] = row_cells.as_slice() else {
            problems.push(format!(
                "README.md's settings table: this row does not have three cells: {row}"
            ));
            continue;
        };
        let default = match documented_value(default) {
            Ok(default) => default,
            Err(problem) => {
                problems.push(format!(
                    "README.md's settings table, row {names}: {problem}"
                ));
                continue;
            }
        };
        for name in names.split(',').map(str::trim) {
            let Some(name) = name
                .strip_prefix('`')
                .and_then(|name| name.strip_suffix('`'))
                .filter(|name| is_variable_name(name))
            else {
                problems.push(format!(
                    "README.md's settings table: {name:?} in row {names} is not a variable name \
                     in backticks"
                ));
                continue;
            };
            if defaults.insert(name.to_string(), default.clone()).is_some() {
                problems.push(format!("README.md's settings table names {name} twice"));
            }
        }
    }
    Ok((defaults, problems))
}

/// The cells of a table row, trimmed. The meaning, last, may hold anything; the first two
/// cells never hold a `|`.
fn cells(row: &str) -> Vec<&str> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    inner.splitn(3, '|').map(str::trim).collect()
}

/// Whether a row is the table's `|---|---|---|` line.
fn is_separator(row: &str) -> bool {
    row.chars()
        .all(|char| matches!(char, '|' | '-' | ':' | ' '))
}

/// Whether `name` looks like an environment variable: capitals, digits and `_`.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|byte| byte.is_ascii_uppercase() || byte.is_ascii_digit() || byte == b'_')
}

/// The value a default cell stands for: the text of a cell that is one backticked value, or
/// the empty value for a cell without backticks.
fn documented_value(cell: &str) -> Result<String, String> {
    if !cell.contains('`') {
        return Ok(String::new());
    }
    cell.strip_prefix('`')
        .and_then(|value| value.strip_suffix('`'))
        .filter(|value| !value.contains('`'))
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "the default cell {cell:?} must be one value in backticks, or words without \
                 backticks for an empty default"
            )
        })
}

/// If the settings read with only `name` set to `value` are not the code's defaults, what
/// differs: the refusal, or the lines of their pretty `Debug` that only one side has.
fn differs_from_the_default(name: &str, value: &str, defaults: &str) -> Option<String> {
    let read = match Settings::from_lookup(|asked| (asked == name).then(|| value.to_string())) {
        Ok(read) => format!("{read:#?}"),
        Err(error) => return Some(format!("the code refuses it ({error})")),
    };
    if read == defaults {
        return None;
    }
    let only_in = |one: &str, other: &str| -> String {
        let other: BTreeSet<&str> = other.lines().map(str::trim).collect();
        let lines: Vec<&str> = one
            .lines()
            .map(str::trim)
            .filter(|line| !other.contains(line))
            .collect();
        lines.join(" ")
    };
    Some(format!(
        "the code reads it as `{}` where its default is `{}`",
        only_in(&read, defaults),
        only_in(defaults, &read)
    ))
}

/// A documented value as a problem line shows it: in backticks, or "nothing" when empty.
fn shown(value: &str) -> String {
    if value.is_empty() {
        "nothing (an empty default)".to_string()
    } else {
        format!("`{value}`")
    }
}

/// Every way in which the README's table and `.env` disagree with the code or each other, one
/// line per problem, each naming the variable and the place it differs.
fn disagreements(readme: &str, dot_env: &str) -> Vec<String> {
    let (read_by_code, defaults) = variables_the_code_reads();
    let (in_readme, readme_problems) = match readme_defaults(readme) {
        Ok(table) => table,
        Err(problem) => return vec![problem],
    };
    let (in_dot_env, dot_env_problems) = dot_env_values(dot_env);
    let every_name: BTreeSet<&String> = read_by_code
        .iter()
        .chain(in_readme.keys())
        .chain(in_dot_env.keys())
        .collect();
    let mut problems = [readme_problems, dot_env_problems].concat();
    for name in every_name {
        if !read_by_code.contains(name) {
            for (document, names) in [
                ("README.md's settings table", &in_readme),
                (".env", &in_dot_env),
            ] {
                if names.contains_key(name) {
                    problems.push(format!(
                        "{name}: {document} lists it, but the code does not read it"
                    ));
                }
            }
            continue;
        }
        let readme_value = in_readme.get(name);
        let dot_env_value = in_dot_env.get(name);
        if readme_value.is_none() {
            problems.push(format!(
                "{name}: the code reads it, but README.md's settings table has no row for it"
            ));
        }
        if dot_env_value.is_none() {
            problems.push(format!(
                "{name}: the code reads it, but .env does not list it"
            ));
        }
        if let (Some(readme_value), Some(dot_env_value)) = (readme_value, dot_env_value) {
            if readme_value != dot_env_value {
                problems.push(format!(
                    "{name}: README.md's settings table gives {}, .env gives {}",
                    shown(readme_value),
                    shown(dot_env_value)
                ));
            }
        }
        for (document, value) in [
            ("README.md's settings table", readme_value),
            (".env", dot_env_value),
        ] {
            let Some(value) = value else { continue };
            if let Some(difference) = differs_from_the_default(name, value, &defaults) {
                problems.push(format!(
                    "{name}: {document} gives {}, but {difference}",
                    shown(value)
                ));
            }
        }
    }
    problems
}

#[test]
fn the_readme_s_settings_table_and_dot_env_give_every_setting_the_code_s_default() {
    let problems = disagreements(README, DOT_ENV);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

/// The check itself: a document that is wrong in each way it looks for is reported, each
/// mistake with its variable and its place.
#[test]
fn every_kind_of_disagreement_is_named() {
    let readme_without_a_row: String = README
        .replace(
            "| `KAFKA_FETCH_MAX_WAIT` | `500ms` |",
            "| `KAFKA_FETCH_MAX_WAIT` | `250ms` |",
        )
        .replace("| `BATCH_SIZE` | `8000` |", "| `BATCH_SIZE` | 8000 |")
        .replace("| `WRITER_TASKS` |", "| `WRITER_TASKS`, `WRITER_THREADS` |")
        .replace("| `HANDLERS` | `4` |", "| `HANDLERS` | `4 tasks` |")
        .lines()
        .filter(|line| !line.starts_with("| `LOG_FORMAT` |"))
        .map(|line| format!("{line}\n"))
        .collect();
    let dot_env = DOT_ENV
        .replace("KAFKA_TOPIC=orders", "KAFKA_TOPIC=orderz")
        .replace(
            "SWEEP_INTERVAL=10s",
            "SWEEP_INTERVAL=10s\nSWEEP_INTERVAL=10s",
        );
    assert_ne!(
        readme_without_a_row, README,
        "the README's rows have changed"
    );
    assert_ne!(dot_env, DOT_ENV, ".env's lines have changed");

    let problems = disagreements(&readme_without_a_row, DOT_ENV).join("\n");
    for expected in [
        "KAFKA_FETCH_MAX_WAIT: README.md's settings table gives `250ms`, .env gives `500ms`",
        "KAFKA_FETCH_MAX_WAIT: README.md's settings table gives `250ms`, but the code reads it \
         as `fetch_max_wait: 250ms,` where its default is `fetch_max_wait: 500ms,`",
        "BATCH_SIZE: README.md's settings table gives nothing (an empty default), .env gives \
         `8000`",
        "WRITER_THREADS: README.md's settings table lists it, but the code does not read it",
        "HANDLERS: README.md's settings table gives `4 tasks`, but the code refuses it",
        "LOG_FORMAT: the code reads it, but README.md's settings table has no row for it",
    ] {
        assert!(
            problems.contains(expected),
            "{expected}\nnot in\n{problems}"
        );
    }

    let problems = disagreements(README, &dot_env).join("\n");
    for expected in [
        "KAFKA_TOPIC: README.md's settings table gives `orders`, .env gives `orderz`",
        "KAFKA_TOPIC: .env gives `orderz`, but the code reads it as",
        ".env sets SWEEP_INTERVAL twice",
    ] {
        assert!(
            problems.contains(expected),
            "{expected}\nnot in\n{problems}"
        );
    }

    // The same duration in another spelling means the same, but the two documents must still
    // spell it alike.
    let problems = disagreements(
        README,
        &DOT_ENV.replace("LEASE_TTL=10s", "LEASE_TTL=10000ms"),
    );
    assert_eq!(
        problems,
        ["LEASE_TTL: README.md's settings table gives `10s`, .env gives `10000ms`"]
    );

    let problems = disagreements(
        &README.replace(
            "| variable | default | meaning |",
            "| name | default | meaning |",
        ),
        DOT_ENV,
    );
    assert!(
        problems.len() == 1 && problems[0].contains("must have the columns"),
        "{problems:?}"
    );
}
