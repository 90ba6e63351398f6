//! Checks `compose.yaml` as Docker reads it, without a Docker engine.
//!
//! Debian's `docker-compose` (v1.29, installed by `scripts/test`) validates the file against the
//! Compose Specification and prints it normalized: `env_file` merged under `environment`, paths
//! made absolute, defaults filled in. The tests read that output rather than the file itself,
//! so they see what `docker compose up` would run, including which value wins when `.env` and
//! `environment:` both set a variable. A missing `docker-compose` fails the tests; they never
//! skip. The variables `compose.yaml` takes from the shell are removed from `docker-compose`'s
//! environment, so the tests see the file's defaults whatever the caller's shell holds; the
//! tests of those variables set them for one run each.
//!
//! The Dockerfile and `.dockerignore` are read as text: what the build copies decides which
//! edits rebuild the image and what ends up in its layers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

/// The project root, where `compose.yaml`, `Dockerfile` and `.env` are.
fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The variables `compose.yaml` takes from the shell that runs `docker compose`, with the
/// value each has when the shell does not set it (and `.env` does not either).
const SHELL_VARIABLES: [(&str, &str); 3] = [
    ("WRITER_ENABLED", "false"),
    ("HTTP_PUBLISH_ADDR", "127.0.0.1"),
    ("HTTP_AUTH_TOKENS", ""),
];

/// The normalized compose file as JSON, with none of [`SHELL_VARIABLES`] set in the shell,
/// computed once for all tests of this file.
pub(crate) fn compose() -> &'static Value {
    static COMPOSE: OnceLock<Value> = OnceLock::new();
    COMPOSE.get_or_init(|| compose_with_shell(&[]))
}

/// The normalized compose file as JSON when the shell running `docker compose` sets `shell`.
fn compose_with_shell(shell: &[(&str, &str)]) -> Value {
    yaml_to_json(&normalized_compose_yaml(shell))
}

/// Runs `docker-compose config`, which exits non-zero when the file breaks the specification,
/// with `shell` as the only ones of [`SHELL_VARIABLES`] in its environment.
fn normalized_compose_yaml(shell: &[(&str, &str)]) -> String {
    let mut command = Command::new("docker-compose");
    command
        .args(["-f", "compose.yaml", "--project-directory", ".", "config"])
        .current_dir(project_root());
    // COMPOSE_FILE, COMPOSE_PROFILES and the like would change what is read; the test checks
    // the file alone.
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("COMPOSE_") {
            command.env_remove(name);
        }
    }
    for (name, _) in SHELL_VARIABLES {
        command.env_remove(name);
    }
    command.envs(shell.iter().copied());
    let output = command.output().unwrap_or_else(|error| {
        if error.kind() == std::io::ErrorKind::NotFound {
            panic!(
                "docker-compose is missing: scripts/test installs it (Debian package \
                 docker-compose); install it or run scripts/test"
            );
        }
        panic!("cannot run docker-compose: {error}");
    });
    assert!(
        output.status.success(),
        "docker-compose config rejects compose.yaml with {shell:?} in its environment ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap_or_else(|error| panic!("docker-compose config printed invalid UTF-8: {error}"))
}

/// Converts YAML to JSON with PyYAML, since the crate has no YAML parser of its own.
fn yaml_to_json(yaml: &str) -> Value {
    let (program, mut arguments) = python_of_docker_compose();
    arguments.extend([
        "-c".to_owned(),
        "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)".to_owned(),
    ]);
    let mut child = Command::new(&program)
        .args(&arguments)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {program} to convert YAML to JSON: {error}"));
    // The YAML is a few kilobytes, far below a pipe's buffer, so writing all of it before
    // reading the output cannot deadlock.
    child
        .stdin
        .take()
        .unwrap_or_else(|| panic!("{program} has no standard input"))
        .write_all(yaml.as_bytes())
        .unwrap_or_else(|error| panic!("cannot write YAML to {program}: {error}"));
    let output = child
        .wait_with_output()
        .unwrap_or_else(|error| panic!("cannot wait for {program}: {error}"));
    assert!(
        output.status.success(),
        "{program} {arguments:?} cannot convert docker-compose's YAML to JSON ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|error| panic!("{program} printed invalid JSON: {error}"))
}

/// The Python that runs `docker-compose`, read from its `#!` line: PyYAML is a dependency of
/// docker-compose, so that interpreter is the one sure to have it. Falls back to `python3`
/// when `docker-compose` is not a script.
fn python_of_docker_compose() -> (String, Vec<String>) {
    let fallback = ("python3".to_owned(), Vec::new());
    let Some(script) = find_in_path("docker-compose") else {
        return fallback;
    };
    let Ok(text) = std::fs::read(&script) else {
        return fallback;
    };
    let first_line = text.split(|&byte| byte == b'\n').next().unwrap_or_default();
    let Some(interpreter) = std::str::from_utf8(first_line)
        .ok()
        .and_then(|line| line.strip_prefix("#!"))
    else {
        return fallback;
    };
    let mut words = interpreter.split_whitespace().map(str::to_owned);
    match words.next() {
        Some(program) => (program, words.collect()),
        None => fallback,
    }
}

/// Where `name` is found on `PATH`, as the shell would find it.
fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|directory| directory.join(name))
        .find(|candidate| candidate.is_file())
}

/// One service of the normalized file.
fn service(name: &str) -> &'static Value {
    service_of(compose(), name)
}

/// One service of a normalized file.
fn service_of<'compose>(compose: &'compose Value, name: &str) -> &'compose Value {
    let service = &compose["services"][name];
    assert!(
        service.is_object(),
        "compose.yaml has no service {name:?}; services: {}",
        compose["services"]
    );
    service
}

/// A variable of a service's environment after `.env` and `environment:` are merged.
fn environment_variable(service_name: &str, variable: &str) -> &'static str {
    environment_variable_of(compose(), service_name, variable)
}

/// A variable of a service's environment in a normalized file.
fn environment_variable_of<'compose>(
    compose: &'compose Value,
    service_name: &str,
    variable: &str,
) -> &'compose str {
    service_of(compose, service_name)["environment"][variable]
        .as_str()
        .unwrap_or_else(|| panic!("service {service_name} does not set {variable}"))
}

/// A service's health check command, as a list of strings; fails when there is none or it is
/// disabled, since every `depends_on` condition and restart decision relies on it.
fn healthcheck_command(service_name: &str) -> Vec<String> {
    let healthcheck = &service(service_name)["healthcheck"];
    assert!(
        healthcheck.is_object(),
        "service {service_name} has no healthcheck"
    );
    assert_ne!(
        healthcheck["disable"],
        Value::Bool(true),
        "service {service_name} disables its healthcheck"
    );
    let command: Vec<String> = match &healthcheck["test"] {
        Value::String(shell_command) => vec!["CMD-SHELL".to_owned(), shell_command.clone()],
        Value::Array(words) => words
            .iter()
            .map(|word| word.as_str().unwrap_or_default().to_owned())
            .collect(),
        other => panic!("service {service_name} has a healthcheck test of {other}"),
    };
    assert!(
        command.len() >= 2 && command[0] != "NONE",
        "service {service_name} has an empty healthcheck: {command:?}"
    );
    command
}

/// The parts of a `postgres://user:password@host:port/database` URL the tests compare.
struct PostgresUrl {
    user: String,
    password: String,
    host: String,
    database: String,
}

fn parse_postgres_url(url: &str) -> PostgresUrl {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))
        .unwrap_or_else(|| panic!("DATABASE_URL {url:?} is not a postgres:// URL"));
    let (credentials, location) = rest
        .split_once('@')
        .unwrap_or_else(|| panic!("DATABASE_URL {url:?} has no user@"));
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let (host_and_port, database) = location
        .split_once('/')
        .unwrap_or_else(|| panic!("DATABASE_URL {url:?} names no database"));
    let host = host_and_port.split(':').next().unwrap_or_default();
    let database = database.split('?').next().unwrap_or_default();
    PostgresUrl {
        user: user.to_owned(),
        password: password.to_owned(),
        host: host.to_owned(),
        database: database.to_owned(),
    }
}

/// The host addresses a service publishes container port `target` on, as host port
/// `published`; an entry without an address (every interface) gives `""`. docker-compose
/// prints short entries as strings (`127.0.0.1:9094:9094/tcp`) and others as mappings
/// (`{host_ip: 127.0.0.1, published: 8080, target: 8080}`).
fn published_addresses(service: &Value, published: u64, target: u64) -> Vec<String> {
    let as_port = |value: &Value| match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.parse().ok(),
        _ => None,
    };
    let entries = service["ports"].as_array().map_or(&[][..], Vec::as_slice);
    entries
        .iter()
        .filter_map(|entry| match entry {
            Value::Object(_) => (as_port(&entry["published"]) == Some(published)
                && as_port(&entry["target"]) == Some(target))
            .then(|| entry["host_ip"].as_str().unwrap_or_default().to_owned()),
            Value::String(text) => {
                let without_protocol = text.split('/').next().unwrap_or_default();
                let parts: Vec<&str> = without_protocol.rsplitn(3, ':').collect();
                (parts.len() >= 2
                    && parts[0].parse() == Ok(target)
                    && parts[1].parse() == Ok(published))
                .then(|| parts.get(2).copied().unwrap_or_default().to_owned())
            }
            _ => None,
        })
        .collect()
}

/// The Dockerfile's instructions, each as its keyword (upper case) and its words, with
/// continued lines joined and comments left out.
fn dockerfile_instructions() -> Vec<(String, Vec<String>)> {
    let dockerfile = read_project_file("Dockerfile");
    let mut instructions = Vec::new();
    let mut current = String::new();
    for line in dockerfile.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(continued) => {
                current.push_str(continued);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                let mut words = current.split_whitespace().map(str::to_owned);
                if let Some(keyword) = words.next() {
                    instructions.push((keyword.to_ascii_uppercase(), words.collect()));
                }
                current.clear();
            }
        }
    }
    instructions
}

/// What the Dockerfile's `COPY` and `ADD` instructions take from the build context: their
/// sources, leaving out the flags and the destination, and copies from another stage.
fn files_copied_from_the_context() -> Vec<String> {
    let mut sources = Vec::new();
    for (keyword, words) in dockerfile_instructions() {
        if keyword != "COPY" && keyword != "ADD" {
            continue;
        }
        if words.iter().any(|word| word.starts_with("--from")) {
            continue;
        }
        let arguments: Vec<String> = if words.first().is_some_and(|word| word.starts_with('[')) {
            // The JSON form: ["source", ..., "destination"].
            let json = words.join(" ");
            serde_json::from_str(&json)
                .unwrap_or_else(|error| panic!("{keyword} {json} is not a JSON array: {error}"))
        } else {
            words
                .into_iter()
                .filter(|word| !word.starts_with("--"))
                .collect()
        };
        let Some((_destination, copied)) = arguments.split_last() else {
            panic!("the Dockerfile has a {keyword} without arguments");
        };
        sources.extend(copied.iter().cloned());
    }
    sources
}

/// A file of the project root, as text.
fn read_project_file(name: &str) -> String {
    std::fs::read_to_string(project_root().join(name))
        .unwrap_or_else(|error| panic!("cannot read {name}: {error}"))
}

#[test]
fn the_stack_has_kafka_postgres_and_orderstore() {
    for name in ["kafka", "postgres", "orderstore"] {
        service(name);
    }
}

#[test]
fn orderstore_is_built_from_the_projects_dockerfile() {
    let build = &service("orderstore")["build"];
    let context = build["context"]
        .as_str()
        .unwrap_or_else(|| panic!("orderstore is not built (build: {build})"));
    let context = Path::new(context).canonicalize().unwrap_or_else(|error| {
        panic!("orderstore's build context {context} is unusable: {error}")
    });
    let root = project_root()
        .canonicalize()
        .unwrap_or_else(|error| panic!("cannot resolve the project root: {error}"));
    assert_eq!(
        context, root,
        "orderstore must be built from the project root"
    );
    let dockerfile = build["dockerfile"].as_str().unwrap_or("Dockerfile");
    assert_eq!(dockerfile, "Dockerfile");
    assert!(
        root.join(dockerfile).is_file(),
        "compose.yaml builds from {dockerfile}, which does not exist"
    );
}

#[test]
fn orderstore_starts_only_after_kafka_and_postgres_are_healthy() {
    let depends_on = &service("orderstore")["depends_on"];
    for dependency in ["kafka", "postgres"] {
        assert_eq!(
            depends_on[dependency]["condition"], "service_healthy",
            "orderstore must wait for a healthy {dependency} (depends_on: {depends_on})"
        );
        healthcheck_command(dependency);
    }
}

#[test]
fn orderstore_reaches_kafka_and_postgres_by_their_service_names() {
    // These also prove that environment: wins over .env, whose defaults say localhost.
    assert_eq!(
        environment_variable("orderstore", "KAFKA_BROKERS"),
        "kafka:9092",
        "orderstore must reach Kafka at kafka:9092"
    );
    let database_url = parse_postgres_url(environment_variable("orderstore", "DATABASE_URL"));
    assert_eq!(
        database_url.host, "postgres",
        "orderstore's DATABASE_URL must point at the postgres service"
    );
    // The credentials must be those PostgreSQL's image creates on first start.
    assert_eq!(
        database_url.user,
        environment_variable("postgres", "POSTGRES_USER")
    );
    assert_eq!(
        database_url.password,
        environment_variable("postgres", "POSTGRES_PASSWORD")
    );
    assert_eq!(
        database_url.database,
        environment_variable("postgres", "POSTGRES_DB")
    );
}

#[test]
fn kafka_advertises_the_address_orderstore_uses() {
    // A Kafka client bootstraps, then connects to the advertised addresses; advertising
    // localhost there would send orderstore to its own container.
    let advertised = environment_variable("kafka", "KAFKA_ADVERTISED_LISTENERS");
    assert!(
        advertised
            .split(',')
            .any(|listener| listener.ends_with("://kafka:9092")),
        "kafka must advertise kafka:9092 to other containers, advertises {advertised}"
    );
}

#[test]
fn orderstore_serves_http_on_port_8080_of_the_hosts_loopback_by_default() {
    let http_addr = environment_variable("orderstore", "HTTP_ADDR");
    assert!(
        http_addr.starts_with("0.0.0.0:"),
        "orderstore must listen on every interface of its container, listens on {http_addr}"
    );
    // The API is open unless HTTP_AUTH_TOKENS is set, so by default only this machine reaches
    // it, as Kafka's port.
    let addresses = published_addresses(service("orderstore"), 8080, 8080);
    assert_eq!(
        addresses,
        ["127.0.0.1"],
        "orderstore must publish 8080:8080 on 127.0.0.1 only, ports: {}",
        service("orderstore")["ports"]
    );
}

#[test]
fn http_publish_addr_in_the_shell_publishes_port_8080_on_that_address() {
    let compose = compose_with_shell(&[("HTTP_PUBLISH_ADDR", "0.0.0.0")]);
    let orderstore = service_of(&compose, "orderstore");
    assert_eq!(
        published_addresses(orderstore, 8080, 8080),
        ["0.0.0.0"],
        "with HTTP_PUBLISH_ADDR=0.0.0.0 orderstore must publish 8080:8080 on every interface, \
         ports: {}",
        orderstore["ports"]
    );
}

#[test]
fn kafka_is_published_on_the_hosts_loopback_only() {
    let addresses = published_addresses(service("kafka"), 9094, 9094);
    assert_eq!(
        addresses,
        ["127.0.0.1"],
        "kafka must publish 9094:9094 on 127.0.0.1 only, matching its advertised \
         localhost:9094; ports: {}",
        service("kafka")["ports"]
    );
}

#[test]
fn the_writer_is_off_unless_the_shell_turns_it_on() {
    assert_eq!(
        environment_variable("orderstore", "WRITER_ENABLED"),
        "false",
        "without WRITER_ENABLED in the shell, orderstore's writer must be off"
    );
}

#[test]
fn writer_enabled_in_the_shell_reaches_orderstore_over_dot_env() {
    // .env says false (its test keeps it equal to the code's default); the shell's value must
    // still win, so the quick start needs no edit of a tracked file.
    let dot_env = read_project_file(".env");
    assert!(
        dot_env
            .lines()
            .any(|line| line.trim() == "WRITER_ENABLED=false"),
        ".env must set WRITER_ENABLED=false for this test to show the shell winning over it"
    );
    for value in ["true", "false"] {
        let compose = compose_with_shell(&[("WRITER_ENABLED", value)]);
        assert_eq!(
            environment_variable_of(&compose, "orderstore", "WRITER_ENABLED"),
            value,
            "WRITER_ENABLED={value} in the shell must reach orderstore's container"
        );
    }
}

#[test]
fn tokens_in_the_shell_reach_orderstore_and_none_leaves_the_api_open() {
    assert_eq!(
        environment_variable("orderstore", "HTTP_AUTH_TOKENS"),
        "",
        "without HTTP_AUTH_TOKENS in the shell (and in .env), the API must be open"
    );
    let token = "a-token-of-sixteen-characters";
    let compose = compose_with_shell(&[("HTTP_AUTH_TOKENS", token)]);
    assert_eq!(
        environment_variable_of(&compose, "orderstore", "HTTP_AUTH_TOKENS"),
        token,
        "HTTP_AUTH_TOKENS in the shell must reach orderstore's container"
    );
}

#[test]
fn compose_takes_only_the_listed_variables_from_the_shell() {
    // Every $NAME or ${NAME...} must be in SHELL_VARIABLES, or the other tests would see
    // whatever the caller's shell holds instead of the file's defaults.
    let file = read_project_file("compose.yaml");
    let listed: Vec<&str> = SHELL_VARIABLES.iter().map(|(name, _)| *name).collect();
    let mut taken = interpolated_variables(&file);
    taken.sort_unstable();
    taken.dedup();
    let mut expected = listed.clone();
    expected.sort_unstable();
    assert_eq!(
        taken, expected,
        "compose.yaml takes {taken:?} from the shell; this file's SHELL_VARIABLES says {listed:?}"
    );
    for (name, default) in SHELL_VARIABLES {
        assert!(
            file.contains(&format!("${{{name}:-{default}}}")),
            "compose.yaml must default {name} to {default} when the shell does not set it"
        );
    }
}

/// The variables a compose file interpolates, as Compose reads them: `$NAME` and
/// `${NAME...}`, but not the escaped `$$`, and nothing in a comment line.
fn interpolated_variables(file: &str) -> Vec<&str> {
    let is_name_byte = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'_';
    let mut names = Vec::new();
    for line in file
        .lines()
        .filter(|line| !line.trim_start().starts_with('#'))
    {
        let bytes = line.as_bytes();
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] != b'$' {
                index += 1;
                continue;
            }
            let start = match bytes.get(index + 1) {
                Some(b'$') => {
                    index += 2;
                    continue;
                }
                Some(b'{') => index + 2,
                _ => index + 1,
            };
            let end = start
                + bytes[start..]
                    .iter()
                    .take_while(|&&byte| is_name_byte(byte))
                    .count();
            if end > start {
                names.push(&line[start..end]);
            }
            index = end.max(index + 1);
        }
    }
    names
}

#[test]
fn orderstore_has_a_fixed_instance_id() {
    // Without one, every start picks a new random name, and the leases a crashed container
    // held stay idle until they expire instead of being taken back at once.
    let instance_id = environment_variable("orderstore", "INSTANCE_ID");
    assert!(
        !instance_id.is_empty()
            && instance_id.len() <= 64
            && instance_id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"._-".contains(&byte)),
        "orderstore's INSTANCE_ID must be 1 to 64 letters, digits, '.', '_' or '-', is \
         {instance_id:?}"
    );
}

#[test]
fn orderstore_checks_its_own_health_with_its_binary() {
    // The runtime image has no curl or wget, so the check must run the binary itself.
    let command = healthcheck_command("orderstore");
    assert_eq!(
        command[0], "CMD",
        "orderstore's healthcheck needs no shell: {command:?}"
    );
    assert!(
        command[1] == "orderstore" || command[1] == "/usr/local/bin/orderstore",
        "orderstore's healthcheck must run the orderstore binary, runs {command:?}"
    );
}

#[test]
fn kafka_is_apache_kafka_and_postgres_is_health_checked() {
    let image = service("kafka")["image"].as_str().unwrap_or_default();
    assert!(
        image.starts_with("apache/kafka:"),
        "kafka must be the Apache Kafka image, is {image:?}"
    );
    let postgres_check = healthcheck_command("postgres");
    assert!(
        postgres_check
            .iter()
            .any(|word| word.contains("pg_isready")),
        "postgres's healthcheck must ask pg_isready, runs {postgres_check:?}"
    );
}

/// The Dockerfile caches dependencies by building a stand-in crate from Cargo.toml alone; the
/// manifest does not load unless every benchmark it declares has a file, so the stand-in step
/// must create each one.
#[test]
fn the_dockerfile_stands_in_for_every_declared_benchmark() {
    let manifest = read_project_file("Cargo.toml");
    let dockerfile = read_project_file("Dockerfile");
    let stand_ins = dockerfile
        .lines()
        .find(|line| line.contains("for bench in"))
        .unwrap_or_else(|| panic!("the Dockerfile makes no stand-in benchmarks"));
    let declared: Vec<&str> = manifest
        .split("[[bench]]")
        .skip(1)
        .filter_map(|section| {
            section
                .lines()
                .find(|line| line.trim_start().starts_with("name"))
        })
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    assert!(!declared.is_empty(), "no [[bench]] found in Cargo.toml");
    for bench in declared {
        assert!(
            stand_ins
                .split_whitespace()
                .any(|word| word.trim_end_matches(';') == bench),
            "the Dockerfile's stand-in step does not create benches/{bench}.rs"
        );
    }
}

/// The image is built from what the release binary compiles and nothing else: `.env` in a
/// layer would keep its passwords and tokens there and rebuild the crate at every edit of it;
/// `tests/` holds only what tests include.
#[test]
fn the_dockerfile_copies_neither_dot_env_nor_tests() {
    let sources = files_copied_from_the_context();
    assert!(
        !sources.is_empty(),
        "the Dockerfile copies nothing from the context"
    );
    for source in &sources {
        let path = source.trim_start_matches("./").trim_end_matches('/');
        assert!(
            !matches!(path, "" | "." | "*"),
            "the Dockerfile copies the whole build context ({source}), .env and tests/ with it"
        );
        assert!(
            !path.starts_with(".env") && path != "tests" && !path.starts_with("tests/"),
            "the Dockerfile copies {source}, which the release build does not need"
        );
    }
}

/// A `# syntax=` directive makes BuildKit pull a frontend image at every build; nothing in
/// the Dockerfile needs one.
#[test]
fn the_dockerfile_has_no_syntax_directive() {
    let dockerfile = read_project_file("Dockerfile");
    let directive = dockerfile.lines().find(|line| {
        let squeezed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        squeezed.to_ascii_lowercase().starts_with("#syntax=")
    });
    assert_eq!(directive, None, "the Dockerfile has a syntax directive");
}

/// What the build never needs stays out of its context: build output and history (large), and
/// `.env` (secrets).
#[test]
fn the_build_context_leaves_out_target_git_and_dot_env() {
    let dockerignore = read_project_file(".dockerignore");
    let ignored: Vec<&str> = dockerignore
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| line.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    for path in ["target", ".git", ".env", ".dev"] {
        assert!(
            ignored.contains(&path),
            ".dockerignore must leave {path} out of the build context; it lists {ignored:?}"
        );
    }
}
