//! The invariants ARCHITECTURE.md states about where code lives, checked on the parsed source,
//! so that a change that breaks one fails here instead of making the document false.
//!
//! `source_scan` parses every file of `src/` that is compiled outside tests; the checks below
//! ask it about string literals, calls and spawns, tests and attributes aside. What the syntax
//! cannot tell, the checks cannot either: a method is known by its name, not by the type of its
//! receiver, and SQL by how its text looks. Each check says what it relies on; the self-tests
//! feed the scanner snippets it must catch, so that the checks can fail.

mod source_scan;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use source_scan::{scan, source_tree, unreached_source_files, FileContents, Found, SourceFile};

// The allow-lists, kept here as data so that moving code means changing one line.

/// The folders outside `src/store/postgres/` that may hold SQL, each with its reason.
const SQL_ALLOWED_OUTSIDE_POSTGRES: &[(&str, &str)] = &[(
    "src/bin/orderstore-bench/",
    "the benchmark tool measures PostgreSQL's own ceilings (COPY, fsync, restore scans, \
     freshness) with SQL of its own; it is not the service",
)];

/// The one file that may start tasks freely: the `ShutdownManager` starts every task of the
/// service under a named `Component` and watches it.
const SHUTDOWN_MANAGER: &str = "src/shutdown.rs";

/// A file that starts tasks or threads other than through the shutdown manager.
struct SpawnException {
    /// The file, from the crate root.
    path: &'static str,
    /// Exactly how many spawns it holds, so that a second one fails the check.
    n_spawns: usize,
    /// Why these tasks need no supervision.
    reason: &'static str,
}

/// Every place outside the shutdown manager that starts a task or a thread, counted per file.
const SPAWN_EXCEPTIONS: &[SpawnException] = &[
    SpawnException {
        path: "src/store/postgres/restore.rs",
        n_spawns: 1,
        reason: "the restore's range readers, one task per connection taking id ranges in \
                 turn, which the restore awaits (and start-up with it) before it goes on",
    },
    SpawnException {
        path: "src/bin/orderstore-bench/ceiling.rs",
        n_spawns: 1,
        reason: "the benchmark tool's parallel COPYs, awaited by the measurement",
    },
    SpawnException {
        path: "src/bin/orderstore-bench/freshness.rs",
        n_spawns: 3,
        reason: "the benchmark tool's producer, pollers and sends, awaited by the measurement",
    },
    SpawnException {
        path: "src/bin/orderstore-bench/fsync_probe.rs",
        n_spawns: 1,
        reason: "the benchmark tool's fsync probe thread, joined by the measurement",
    },
    SpawnException {
        path: "src/bin/orderstore-bench/ingest.rs",
        n_spawns: 2,
        reason: "the benchmark tool's application under test and its readers, awaited by the \
                 measurement",
    },
    SpawnException {
        path: "src/bin/orderstore-bench/measure.rs",
        n_spawns: 1,
        reason: "the benchmark tool's PostgreSQL connection driver, which ends with the client",
    },
];

/// The files whose SQL may write `kafka_offsets`, each with its reason.
const KAFKA_OFFSETS_WRITERS: &[(&str, &str)] = &[
    (
        "src/store/postgres/offsets.rs",
        "the statement behind `store_offsets`, which only the committer calls",
    ),
    (
        "src/store/postgres/schema.rs",
        "migrations, which fill a new column from the stored rows before any task starts",
    ),
    (
        "src/bin/orderstore-bench/scale_store.rs",
        "the scale benchmark, which empties its own database's offsets between two runs of \
         orderstore on it, while none runs",
    ),
];

/// The crate modules the fake-data writer may use: it builds orders and produces them to Kafka,
/// so they go through the same readers and contract as anyone else's.
const WRITER_MAY_USE: &[&str] = &["order", "backoff", "events", "shutdown", "fake_data"];

/// Where the fake-data writer lives.
const WRITER_FOLDER: &str = "src/fake_data/";

/// The PostgreSQL client crates, which the writer must not name.
const POSTGRES_CRATES: &[&str] = &["tokio_postgres", "deadpool_postgres"];

/// Where WARN and ERROR lines may be written: the events, each of which also counts in a
/// metric (`every_warn_or_error_line_is_an_event_with_a_metric`), and the benchmark tool,
/// which is not the service.
const LOG_LINES_AT_WARN_ALLOWED_IN: &[&str] = &["src/events/", "src/bin/"];

/// Files of `src/events/` whose WARN lines have no metric of their own, with the reason.
const WARN_WITHOUT_METRIC: &[(&str, &str)] = &[
    (
        "src/events/prometheus.rs",
        "the metrics recorder itself failed to install: there is no metric to count it in",
    ),
    (
        "src/events/rejections.rs",
        "the summary of rejected records, each already counted by RecordRejected",
    ),
];

/// How many lines of code (tests aside) a file may have before it usually holds two jobs.
const MAX_LINES_OF_CODE: usize = 420;

/// The words a SQL statement starts with, separated by spaces.
const STATEMENT_KEYWORDS: &str = "SELECT INSERT UPDATE DELETE WITH CREATE ALTER DROP COPY BEGIN \
    COMMIT ROLLBACK LOCK SET TRUNCATE GRANT REVOKE VACUUM ANALYZE EXPLAIN SHOW LISTEN NOTIFY DO";

/// The statements that are whole in one word.
const ONE_WORD_STATEMENTS: &str = "BEGIN COMMIT ROLLBACK VACUUM ANALYZE";

/// Words that, after a statement's first word, show that the text is a statement and not a
/// sentence that happens to start with "update" or "set" (or an HTTP method: `DELETE /orders`).
const CLAUSE_KEYWORDS: &str = "FROM INTO WHERE VALUES SET TABLE INDEX DATABASE SEQUENCE SCHEMA \
    RETURNING CONFLICT JOIN EXISTS ANALYZE TRANSACTION ISOLATION LOCAL SESSION TO AS ON BY \
    LIMIT NOT NULL DEFAULT COLUMN STDIN STDOUT BINARY MODE";

/// Clauses that are SQL wherever they appear in a text, for the fragments a statement is
/// assembled from.
const SQL_ANYWHERE: &[&str] = &[
    "INSERT INTO ",
    "DELETE FROM ",
    "ON CONFLICT ",
    " RETURNING ",
    "FOR UPDATE",
    "FOR SHARE",
];

/// Whether a string literal looks like SQL. A statement starts with its keyword (after
/// whitespace and `--` comments), followed by a clause keyword or by SQL's punctuation (`(`,
/// `=`, `*`, `::`, a `$1` parameter): in upper case either suffices (`SELECT pg_backend_pid()`,
/// `DROP DATABASE x`), in lower case it takes both (`update orders set done = true`), so that
/// a message starting with "set" or "with", or an HTTP method (`DELETE /orders/{id}`), is not
/// SQL. A fragment is SQL when it holds a clause only SQL has (`INSERT INTO`, `ON CONFLICT`),
/// `FROM` and `WHERE`, or `WHERE` and a parameter, in upper case.
fn looks_like_sql(text: &str) -> bool {
    let statement = text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("--"))
        .collect::<Vec<_>>()
        .join(" ");
    let words: Vec<&str> = statement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .collect();
    let has_parameter = statement
        .as_bytes()
        .windows(2)
        .any(|pair| pair[0] == b'$' && pair[1].is_ascii_digit());
    let has_punctuation = has_parameter
        || statement.contains("::")
        || ['(', '=', '*'].iter().any(|mark| statement.contains(*mark));

    let mut tokens = statement.split_whitespace();
    let first = tokens.next().unwrap_or_default().trim_end_matches(';');
    let is_alone = tokens.next().is_none();
    let keyword = STATEMENT_KEYWORDS
        .split_whitespace()
        .find(|keyword| first.eq_ignore_ascii_case(keyword));
    if let Some(keyword) = keyword {
        let in_upper_case = first == keyword;
        let has_clause = words.iter().skip(1).any(|word| {
            CLAUSE_KEYWORDS.split_whitespace().any(|clause| {
                if in_upper_case {
                    *word == clause
                } else {
                    word.eq_ignore_ascii_case(clause)
                }
            })
        });
        let is_whole = in_upper_case
            && is_alone
            && ONE_WORD_STATEMENTS
                .split_whitespace()
                .any(|whole| whole == keyword);
        let is_statement = if in_upper_case {
            has_clause || has_punctuation || is_whole
        } else {
            has_clause && has_punctuation
        };
        if is_statement {
            return true;
        }
    }
    let has_word = |wanted: &str| words.contains(&wanted);
    SQL_ANYWHERE.iter().any(|clause| statement.contains(clause))
        || (has_word("FROM") && has_word("WHERE"))
        || (has_word("WHERE") && has_parameter)
}

/// The string literals of a file's code that look like SQL.
fn sql_literals(contents: &FileContents) -> Vec<&Found> {
    contents
        .string_literals
        .iter()
        .filter(|literal| looks_like_sql(&literal.text))
        .collect()
}

/// The first line of a literal, for a failure message.
fn first_line(text: &str) -> &str {
    text.trim().lines().next().unwrap_or_default()
}

/// The files whose code calls a function or method named `name`, with the lines.
fn callers_of<'a>(
    sources: impl IntoIterator<Item = &'a SourceFile>,
    name: &str,
) -> BTreeMap<String, Vec<usize>> {
    let mut callers = BTreeMap::new();
    for file in sources {
        let lines: Vec<usize> = file
            .contents
            .names_called
            .iter()
            .filter(|call| call.text == name)
            .map(|call| call.line)
            .collect();
        if !lines.is_empty() {
            callers.insert(file.path.clone(), lines);
        }
    }
    callers
}

/// The files that call `name`, without the lines.
fn files_calling<'a>(sources: impl IntoIterator<Item = &'a SourceFile>, name: &str) -> Vec<String> {
    callers_of(sources, name).into_keys().collect()
}

#[test]
fn the_checks_see_every_source_file() {
    // A file that no `mod` declaration reaches is not compiled, but it would not be checked
    // either if someone declared it later through a path this walk does not follow.
    assert!(
        unreached_source_files().is_empty(),
        "no crate root reaches these files through `mod`, so the checks cannot see them: {:?}",
        unreached_source_files()
    );
}

#[test]
fn only_the_postgres_module_holds_sql() {
    let sources = source_tree();
    let mut outside = String::new();
    for file in sources {
        let allowed = file.path.starts_with("src/store/postgres/")
            || SQL_ALLOWED_OUTSIDE_POSTGRES
                .iter()
                .any(|(folder, _reason)| file.path.starts_with(folder));
        if allowed {
            continue;
        }
        for literal in sql_literals(&file.contents) {
            let _ = writeln!(
                outside,
                "  {}:{}: {}",
                file.path,
                literal.line,
                first_line(&literal.text)
            );
        }
    }
    assert!(
        outside.is_empty(),
        "SQL outside src/store/postgres/ (move it there, or list the folder with its reason \
         in SQL_ALLOWED_OUTSIDE_POSTGRES):\n{outside}"
    );
}

#[test]
fn the_sql_check_recognises_the_statements_of_the_postgres_module() {
    // If the heuristic stopped recognising SQL, the check above would pass on anything: every
    // file of the postgres module that talks to PostgreSQL must be seen to hold SQL.
    let sources = source_tree();
    for path in [
        "src/store/postgres/batch.rs",
        "src/store/postgres/leases.rs",
        "src/store/postgres/lookup.rs",
        "src/store/postgres/offsets.rs",
        "src/store/postgres/rejects.rs",
        "src/store/postgres/restore.rs",
        "src/store/postgres/schema.rs",
    ] {
        let file = sources
            .iter()
            .find(|file| file.path == path)
            .unwrap_or_else(|| panic!("{path} is not in the source tree any more"));
        assert!(
            !sql_literals(&file.contents).is_empty(),
            "{path} talks to PostgreSQL, but no literal of it looks like SQL"
        );
    }
}

#[test]
fn the_sql_check_finds_multi_line_constants_raw_strings_and_literals_inside_macros() {
    let snippet = r####"
        const CLAIM: &str = "
            UPDATE leases
               SET owner = $1
             WHERE partition = $2";

        static RAW: &str = r#"insert into orders (body) values ($1)"#;

        fn lookup(table: &str) -> String {
            format!("SELECT body FROM {table} WHERE id = $1")
        }

        fn fragment(extra: bool) -> String {
            let mut query = String::from("body, id");
            if extra {
                query.push_str(concat!(" FROM orders", " WHERE id = $1"));
            }
            tracing::debug!(statement = "SELECT pg_backend_pid()", "asked");
            query
        }

        /// A doc comment may say SELECT * FROM orders WHERE id = 1: it is not sent anywhere.
        #[derive(Debug, thiserror::Error)]
        enum LookupError {
            #[error("SELECT from orders failed where the id was {0}")]
            Failed(i64),
        }

        fn messages() -> [&'static str; 3] {
            [
                "set OFFSET_COMMIT_INTERVAL to a duration",
                "DELETE /orders/{id} answers 405",
                "with tokens set, every order route needs one",
            ]
        }

        #[cfg(test)]
        mod tests {
            const FIXTURE: &str = "DELETE FROM orders";
        }
    "####;
    let contents = scan(snippet).expect("the snippet parses");
    let found: Vec<(usize, &str)> = sql_literals(&contents)
        .into_iter()
        .map(|literal| (literal.line, first_line(&literal.text)))
        .collect();
    assert_eq!(
        found,
        [
            (2, "UPDATE leases"),
            (7, "insert into orders (body) values ($1)"),
            (10, "SELECT body FROM {table} WHERE id = $1"),
            (16, "WHERE id = $1"),
            (18, "SELECT pg_backend_pid()"),
        ],
        "a multi-line constant, a raw string and literals inside format!, concat! and \
         tracing's macros are SQL; a column list, a doc comment, an error message, other \
         messages and a unit test's fixture are not"
    );
}

/// Whether a statement writes rows of `kafka_offsets` (in any case): `INSERT INTO`, `UPDATE`,
/// `DELETE FROM`, `TRUNCATE` or `COPY` naming the table. Reading it or altering its columns is
/// not writing it.
fn writes_kafka_offsets(statement: &str) -> bool {
    let words: Vec<String> = statement
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    let word_before = |at: usize, back: usize| {
        at.checked_sub(back)
            .and_then(|before| words.get(before))
            .map(String::as_str)
    };
    (0..words.len()).any(|at| {
        words[at] == "kafka_offsets"
            && match word_before(at, 1) {
                Some("into" | "update" | "truncate" | "copy") => true,
                Some("from") => word_before(at, 2) == Some("delete"),
                Some("table") => word_before(at, 2) == Some("truncate"),
                _ => false,
            }
    })
}

#[test]
fn the_kafka_offsets_check_tells_writes_from_reads() {
    for write in [
        "INSERT INTO kafka_offsets (kafka_topic) VALUES ($1)",
        "update kafka_offsets set next_offset = $1",
        "DELETE FROM kafka_offsets WHERE kafka_topic = $1",
        "TRUNCATE TABLE kafka_offsets",
        "COPY kafka_offsets FROM STDIN BINARY",
    ] {
        assert!(writes_kafka_offsets(write), "{write} writes kafka_offsets");
    }
    for read in [
        "SELECT next_offset FROM kafka_offsets WHERE kafka_topic = $1",
        "ALTER TABLE kafka_offsets ADD COLUMN fetch_from bigint",
        "UPDATE partition_leases SET owner = $1 FROM kafka_offsets",
    ] {
        assert!(
            !writes_kafka_offsets(read),
            "{read} does not write kafka_offsets"
        );
    }
}

#[test]
fn the_committer_is_the_only_writer_of_kafka_offsets() {
    // Two facts together: the SQL that writes the table is only in the offsets module (and
    // the migrations), and only the committer calls `store_offsets`. SQL is recognised by its
    // text, so a statement assembled at run time from pieces that name the table apart from
    // the verb would escape; none is.
    let sources = source_tree();
    let mut writers: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for file in sources {
        for literal in sql_literals(&file.contents) {
            if writes_kafka_offsets(&literal.text) {
                writers.entry(&file.path).or_default().push(literal.line);
            }
        }
    }
    let unexpected: Vec<_> = writers
        .iter()
        .filter(|(path, _)| {
            !KAFKA_OFFSETS_WRITERS
                .iter()
                .any(|(allowed, _)| path == &allowed)
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "SQL that writes kafka_offsets outside KAFKA_OFFSETS_WRITERS: {unexpected:?}"
    );
    assert!(
        writers.contains_key("src/store/postgres/offsets.rs"),
        "the check no longer recognises the committer's statement: {writers:?}"
    );
    assert_eq!(
        files_calling(sources, "store_offsets"),
        ["src/offsets/committer.rs"],
        "only the committer stores offsets: {:?}",
        callers_of(sources, "store_offsets")
    );
}

#[test]
fn memory_is_filled_by_the_restore_and_the_batch_writers_and_emptied_by_the_sweeper_and_the_restorer(
) {
    // The memory store's methods are known by name: no other type of the crate has methods
    // called `insert_many`, `insert_rows`, `evict` or `evict_partitions`. `insert_rows` (a
    // restore's rows) hands compressed stores' orders on to `insert_many` inside the store.
    let sources = source_tree();
    assert_eq!(
        files_calling(sources, "insert_many"),
        ["src/ingest.rs", "src/store/memory.rs"],
        "only the batch writers (and the store itself) put orders in memory: {:?}",
        callers_of(sources, "insert_many")
    );
    assert_eq!(
        callers_of(sources, "insert_many")
            .get("src/store/memory.rs")
            .map(Vec::len),
        Some(1),
        "the store hands on to insert_many once, from insert_rows"
    );
    assert_eq!(
        files_calling(sources, "insert_rows"),
        ["src/store/postgres/restore.rs"],
        "only the restore puts rows read from PostgreSQL in memory: {:?}",
        callers_of(sources, "insert_rows")
    );
    assert_eq!(
        files_calling(sources, "evict"),
        ["src/sweeper.rs"],
        "only the sweeper evicts by age and count: {:?}",
        callers_of(sources, "evict")
    );
    assert_eq!(
        files_calling(sources, "evict_partitions"),
        ["src/restore.rs"],
        "only the restorer evicts the orders of partitions given up: {:?}",
        callers_of(sources, "evict_partitions")
    );
}

#[test]
fn http_only_reads() {
    let sources = source_tree();
    let http: Vec<&SourceFile> = sources
        .iter()
        .filter(|file| file.path.starts_with("src/http/"))
        .collect();
    assert!(!http.is_empty(), "no files under src/http/");
    for name in [
        "insert_many",
        "insert_rows",
        "evict",
        "evict_partitions",
        "write_batch",
        "store_offsets",
    ] {
        let callers = callers_of(http.iter().copied(), name);
        assert!(
            callers.is_empty(),
            "HTTP changes state with {name}: {callers:?}"
        );
    }
}

#[test]
fn the_writer_only_talks_to_kafka() {
    // The fake-data writer builds orders and produces them; it names no store, no batch
    // writer and no PostgreSQL client, so its orders reach the store only through Kafka, the
    // readers and the contract. That they do arrive is behaviour, tested with the pipeline.
    let sources = source_tree();
    let writer: Vec<&SourceFile> = sources
        .iter()
        .filter(|file| file.path.starts_with(WRITER_FOLDER))
        .collect();
    assert!(!writer.is_empty(), "no files under {WRITER_FOLDER}");
    let mut reaching_out = Vec::new();
    for file in writer {
        for path in &file.contents.paths {
            let mut segments = path.text.split("::");
            let first = segments.next().unwrap_or_default();
            let second = segments.next().unwrap_or_default();
            let outside = (first == "crate" && !WRITER_MAY_USE.contains(&second))
                || (first == "super" && second == "super")
                || POSTGRES_CRATES.contains(&first);
            if outside {
                reaching_out.push(format!("{}:{}: {}", file.path, path.line, path.text));
            }
        }
    }
    assert!(
        reaching_out.is_empty(),
        "the writer reaches past Kafka (it may use crate::{WRITER_MAY_USE:?}): {reaching_out:#?}"
    );
}

/// Every spawn of `sources` outside the shutdown manager, by file.
fn spawns_by_file(sources: &[SourceFile]) -> BTreeMap<String, Vec<Found>> {
    sources
        .iter()
        .filter(|file| file.path != SHUTDOWN_MANAGER && !file.contents.spawns.is_empty())
        .map(|file| (file.path.clone(), file.contents.spawns.clone()))
        .collect()
}

#[test]
fn every_task_is_started_through_the_shutdown_manager_or_listed_with_its_reason() {
    let sources = source_tree();
    let found = spawns_by_file(sources);
    let found_counts: BTreeMap<&str, usize> = found
        .iter()
        .map(|(path, spawns)| (path.as_str(), spawns.len()))
        .collect();
    let allowed_counts: BTreeMap<&str, usize> = SPAWN_EXCEPTIONS
        .iter()
        .map(|exception| (exception.path, exception.n_spawns))
        .collect();
    let mut listing = String::new();
    for (path, spawns) in &found {
        for spawn in spawns {
            let _ = writeln!(listing, "  {path}:{}: {}", spawn.line, spawn.text);
        }
    }
    assert_eq!(
        found_counts, allowed_counts,
        "tasks started outside {SHUTDOWN_MANAGER} (left: found, right: SPAWN_EXCEPTIONS); \
         start the task through the ShutdownManager, or list the file with its count and \
         reason. Found:\n{listing}"
    );
    for exception in SPAWN_EXCEPTIONS {
        assert!(
            !exception.reason.is_empty(),
            "{} has no reason",
            exception.path
        );
    }
}

#[test]
fn the_spawn_check_finds_every_way_of_starting_a_task() {
    let snippet = r#"
        use tokio::task::spawn_blocking as off_the_runtime;

        fn start(manager: &ShutdownManager, tracker: &TaskTracker, set: &mut JoinSet<()>) {
            tokio::spawn(async {});
            tokio::task::spawn(async {});
            spawn_blocking(|| ());
            std::thread::spawn(|| ());
            thread::spawn(|| ());
            tokio::task::spawn_local(async {});
            set.spawn(async {});
            tracker.spawn(async {});
            std::thread::Builder::new().name("probe".into()).spawn(|| ());
            tokio::runtime::Handle::current().spawn_blocking(|| ());
            let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = async { tokio::spawn(async {}).await } => {}
            }
            manager.spawn(Component::Sweeper, async {});
            manager.spawn_finite(Component::Writer(0), async {});
            std::process::Command::new("true").spawn();
        }

        #[cfg(test)]
        mod tests {
            fn helper() {
                tokio::spawn(async {});
            }
        }
    "#;
    let contents = scan(snippet).expect("the snippet parses");
    let found: Vec<(usize, &str)> = contents
        .spawns
        .iter()
        .map(|spawn| (spawn.line, spawn.text.as_str()))
        .collect();
    assert_eq!(
        found,
        [
            (2, "spawn_blocking as off_the_runtime"),
            (5, "tokio::spawn"),
            (6, "tokio::task::spawn"),
            (7, "spawn_blocking"),
            (8, "std::thread::spawn"),
            (9, "thread::spawn"),
            (10, "tokio::task::spawn_local"),
            (11, ".spawn(..)"),
            (12, ".spawn(..)"),
            (13, ".spawn(..)"),
            (14, ".spawn_blocking(..)"),
            (15, "tokio::spawn"),
            (18, "tokio::spawn"),
        ],
        "every form of spawn, inside tokio::select! too, and neither the shutdown manager's, \
         nor a process, nor a test's"
    );
}

#[test]
fn the_call_checks_find_methods_functions_and_paths_in_code_and_macros() {
    let snippet = r#"
        use crate::store::{memory::MemoryStore, postgres::Database};

        fn fill(memory: &MemoryStore, orders: Vec<ServedOrder>) {
            memory.insert_many(orders);
            MemoryStore::evict(memory, 10, None);
            partitions.iter().for_each(MemoryStore::evict_partitions);
            tracing::info!(n_evicted = memory.evict(1, None).n_evicted, "swept");
            let pool = tokio_postgres::Config::new();
        }

        /// Tests take three lines here, this comment included.
        #[cfg(test)]
        mod tests {}
    "#;
    let contents = scan(snippet).expect("the snippet parses");
    let calls: Vec<(usize, &str)> = contents
        .names_called
        .iter()
        .filter(|call| call.text.starts_with("insert") || call.text.starts_with("evict"))
        .map(|call| (call.line, call.text.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            (5, "insert_many"),
            (6, "evict"),
            (7, "evict_partitions"),
            (8, "evict"),
        ]
    );
    let paths: Vec<&str> = contents
        .paths
        .iter()
        .map(|path| path.text.as_str())
        .filter(|path| path.starts_with("crate::") || path.starts_with("tokio_postgres::"))
        .collect();
    assert_eq!(
        paths,
        [
            "crate::store::memory::MemoryStore",
            "crate::store::postgres::Database",
            "tokio_postgres::Config::new",
        ]
    );
    assert_eq!(contents.n_test_lines, 3);
}

#[test]
fn no_source_file_holds_two_jobs() {
    for file in source_tree() {
        let n_lines_of_code = file.n_lines - file.contents.n_test_lines;
        assert!(
            n_lines_of_code <= MAX_LINES_OF_CODE,
            "{} has {n_lines_of_code} lines of code besides its tests: split it by job",
            file.path
        );
    }
}

/// The macros that write a log line at WARN or ERROR.
const WARN_OR_ERROR: &[&str] = &["warn", "error"];

#[test]
fn warn_and_error_lines_are_written_only_by_events() {
    // ARCHITECTURE.md: logs and metrics cannot drift, because every WARN or ERROR line is an
    // event (`src/events/`) that also counts. A `tracing::warn!` anywhere else would be a line
    // with no metric. Macros are known by name, so a local macro called `warn` counts too.
    let mut outside = Vec::new();
    for file in source_tree() {
        if LOG_LINES_AT_WARN_ALLOWED_IN
            .iter()
            .any(|folder| file.path.starts_with(folder))
        {
            continue;
        }
        for found in &file.contents.macros {
            if WARN_OR_ERROR.contains(&found.text.as_str()) {
                outside.push(format!("{}:{}: {}!", file.path, found.line, found.text));
            }
        }
    }
    assert!(
        outside.is_empty(),
        "WARN/ERROR lines outside src/events/ (make each an event with a metric): {outside:#?}"
    );
}

/// The functions of `text` that write a WARN or ERROR line without touching a metric.
fn functions_logging_without_a_metric(text: &str) -> Vec<String> {
    struct Finder {
        current: Vec<String>,
        missing: Vec<String>,
    }
    impl Finder {
        fn check(&mut self, name: String, body: &syn::Block) {
            let tokens = quote_free_tokens(body);
            let logs = WARN_OR_ERROR.iter().any(|name| calls_macro(&tokens, name));
            let counts = ["counter", "gauge", "histogram"]
                .iter()
                .any(|name| calls_macro(&tokens, name))
                || calls_record(&tokens);
            if logs && !counts {
                self.missing.push(name);
            }
        }
    }
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_item_impl(&mut self, item: &'ast syn::ItemImpl) {
            let self_type = match &*item.self_ty {
                syn::Type::Path(path) => path
                    .path
                    .segments
                    .last()
                    .map(|segment| segment.ident.to_string())
                    .unwrap_or_default(),
                _ => String::new(),
            };
            self.current.push(self_type);
            syn::visit::visit_item_impl(self, item);
            self.current.pop();
        }
        fn visit_impl_item_fn(&mut self, item: &'ast syn::ImplItemFn) {
            let name = format!("{}::{}", self.current.join("::"), item.sig.ident);
            self.check(name, &item.block);
        }
        fn visit_item_fn(&mut self, item: &'ast syn::ItemFn) {
            self.check(item.sig.ident.to_string(), &item.block);
        }
    }
    let Ok(file) = syn::parse_file(text) else {
        return vec!["(the file does not parse)".into()];
    };
    let mut finder = Finder {
        current: Vec::new(),
        missing: Vec::new(),
    };
    syn::visit::Visit::visit_file(&mut finder, &file);
    finder.missing
}

/// The identifiers of a block, flattened, in order, with a marker after each macro name.
fn quote_free_tokens(block: &syn::Block) -> Vec<String> {
    fn flatten(stream: proc_macro2::TokenStream, out: &mut Vec<String>) {
        for tree in stream {
            match tree {
                proc_macro2::TokenTree::Group(group) => flatten(group.stream(), out),
                proc_macro2::TokenTree::Ident(ident) => out.push(ident.to_string()),
                proc_macro2::TokenTree::Punct(punct) => out.push(punct.as_char().to_string()),
                proc_macro2::TokenTree::Literal(_) => out.push(String::new()),
            }
        }
    }
    let mut out = Vec::new();
    let stream = block
        .stmts
        .iter()
        .map(|statement| syn::parse_quote!(#statement))
        .collect::<Vec<proc_macro2::TokenStream>>();
    for statement in stream {
        flatten(statement, &mut out);
    }
    out
}

fn calls_macro(tokens: &[String], name: &str) -> bool {
    tokens
        .windows(2)
        .any(|pair| pair[0] == name && pair[1] == "!")
}

/// Whether the block records through another event's `record` (`self.record()`), which
/// counts for it.
fn calls_record(tokens: &[String]) -> bool {
    tokens
        .windows(2)
        .any(|pair| pair[0] == "record" && pair[1].is_empty())
}

#[test]
fn every_warn_or_error_line_is_an_event_with_a_metric() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut missing = Vec::new();
    let events: Vec<&SourceFile> = source_tree()
        .iter()
        .filter(|file| file.path.starts_with("src/events/"))
        .collect();
    assert!(!events.is_empty(), "no files under src/events/");
    for file in events {
        if WARN_WITHOUT_METRIC
            .iter()
            .any(|(path, _)| *path == file.path)
        {
            continue;
        }
        let text = std::fs::read_to_string(root.join(&file.path))
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", file.path));
        for function in functions_logging_without_a_metric(code_of_file(&text)) {
            missing.push(format!("{}: {function}", file.path));
        }
    }
    assert!(
        missing.is_empty(),
        "events that log at WARN/ERROR without a metric: {missing:#?}"
    );
}

/// A file's text before its unit tests, which may log freely.
fn code_of_file(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

#[test]
fn the_log_checks_find_warn_lines_and_missing_metrics() {
    let snippet = r#"
        fn quiet() { tracing::info!("fine"); }
        fn loud() { tracing::warn!(error = %e, "broken"); }
        fn counted() { counter!(names::X).increment(1); tracing::error!("counted"); }
        fn nested() { tokio::select! { _ = a => tracing::warn!("inside a macro"), } }
        impl Event { fn record(self) { warn!("no metric here"); } }
    "#;
    let contents = scan(snippet).unwrap_or_else(|error| panic!("snippet: {error}"));
    let loud: Vec<&Found> = contents
        .macros
        .iter()
        .filter(|found| WARN_OR_ERROR.contains(&found.text.as_str()))
        .collect();
    assert_eq!(loud.len(), 4, "{loud:?}");
    assert_eq!(
        functions_logging_without_a_metric(snippet),
        vec!["loud", "nested", "Event::record"]
    );
}

#[test]
fn lib_rs_names_every_module_in_the_order_it_declares_them() {
    // ARCHITECTURE.md: `src/lib.rs` walks the modules in data-flow order. Its doc comment
    // names each as [`module`]; the declarations below it follow the same order, so a module
    // added without its line in the walk, or out of order, fails here.
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lib.rs"),
    )
    .unwrap_or_else(|error| panic!("cannot read src/lib.rs: {error}"));
    let declared: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("pub mod "))
        .map(|rest| rest.trim_end_matches(';'))
        .collect();
    let mut named: Vec<&str> = Vec::new();
    for line in text.lines().filter(|line| line.starts_with("//!")) {
        for piece in line.split("[`").skip(1) {
            let Some((name, _)) = piece.split_once("`]") else {
                continue;
            };
            let module = name.split("::").next().unwrap_or(name);
            if declared.contains(&module) && !named.contains(&module) {
                named.push(module);
            }
        }
    }
    assert!(!declared.is_empty(), "no `pub mod` in src/lib.rs");
    assert_eq!(
        named, declared,
        "src/lib.rs's doc comment must name every module, in the order they are declared"
    );
}
