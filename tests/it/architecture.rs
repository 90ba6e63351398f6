//! The invariants ARCHITECTURE.md states about where things happen, checked on the source
//! itself, so that a change that breaks one fails here instead of making the document false.

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &str) -> Vec<(PathBuf, String)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, String)>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|error| panic!("cannot read {}: {error}", dir.display()));
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()));
                out.push((path, text));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir), &mut out);
    assert!(!out.is_empty(), "no sources under {dir}");
    out
}

/// The file's path from the crate root, with `/` separators.
fn relative(path: &Path) -> String {
    path.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The code of a file before its unit tests.
fn code_of(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or(text)
}

/// The files of `src/` whose code (tests aside) contains `needle`.
fn files_with(needle: &str) -> Vec<String> {
    let mut found: Vec<String> = sources("src")
        .iter()
        .filter(|(_, text)| code_of(text).contains(needle))
        .map(|(path, _)| relative(path))
        .collect();
    found.sort();
    found
}

#[test]
fn only_the_postgres_module_holds_sql() {
    let statements = [
        "SELECT ",
        "INSERT INTO",
        "UPDATE ",
        "DELETE FROM",
        "COPY orders",
        "CREATE TABLE",
        "ALTER TABLE",
    ];
    for (path, text) in sources("src") {
        let path = relative(&path);
        // The benchmark tool measures PostgreSQL itself, with SQL of its own.
        if path.starts_with("src/store/postgres/") || path.starts_with("src/bin/") {
            continue;
        }
        for line in code_of(&text).lines() {
            let in_string = line.contains('"');
            for statement in statements {
                assert!(
                    !(in_string && line.contains(statement)),
                    "{path} holds SQL ({statement}): {line}"
                );
            }
        }
    }
}

#[test]
fn memory_is_filled_by_the_restore_and_the_batch_writers_and_emptied_by_the_sweeper_and_the_restorer(
) {
    assert_eq!(
        files_with(".insert_many("),
        ["src/ingest.rs", "src/store/postgres/restore.rs"],
        "only the batch writers and the restore put orders in memory"
    );
    assert_eq!(
        files_with(".evict("),
        ["src/sweeper.rs"],
        "only the sweeper evicts by age and count"
    );
    assert_eq!(
        files_with(".evict_partitions("),
        ["src/restore.rs"],
        "only the restorer evicts the orders of partitions given up"
    );
}

#[test]
fn http_only_reads() {
    for (path, text) in sources("src/http") {
        for call in [
            ".insert_many(",
            ".evict(",
            ".evict_partitions(",
            ".write_batch(",
            ".store_offsets(",
        ] {
            assert!(
                !code_of(&text).contains(call),
                "{} changes state with {call}",
                relative(&path)
            );
        }
    }
}

#[test]
fn offsets_are_stored_only_by_the_committer() {
    assert_eq!(files_with(".store_offsets("), ["src/offsets/committer.rs"]);
}

#[test]
fn every_component_is_started_through_the_shutdown_manager() {
    // In the service, `tokio::spawn` appears only where the manager supervises a task, in
    // the restore (whose range readers it awaits before start-up goes on) and in `main.rs`'s
    // signal handler, which lives as long as the process. The benchmark tool is not the
    // service.
    let spawning: Vec<String> = files_with("tokio::spawn(")
        .into_iter()
        .filter(|path| !path.starts_with("src/bin/"))
        .collect();
    assert_eq!(
        spawning,
        [
            "src/main.rs",
            "src/shutdown.rs",
            "src/store/postgres/restore.rs"
        ]
    );
}

#[test]
fn no_source_file_holds_two_jobs() {
    for (path, text) in sources("src") {
        let path = relative(&path);
        if path.ends_with("/tests.rs") {
            continue;
        }
        let n_lines = code_of(&text).lines().count();
        assert!(
            n_lines <= 420,
            "{path} has {n_lines} lines of code before its tests: split it by job"
        );
    }
}
