# Shared by scripts/test and scripts/dev: find or install what orderstore's tests and local
# stack need. Source it; every function exits the script with a message when it cannot help.

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
    if [ -z "$apt_updated" ]; then
        as_root apt-get update -qq
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Puts PostgreSQL's server binaries (initdb, pg_ctl) on PATH, installing Debian's package when
# they are missing, and makes sure the postgres user exists (initdb refuses to run as root).
ensure_postgres() {
    if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        echo "installing PostgreSQL server binaries" >&2
        apt_install postgresql
    fi
    if ! command -v initdb >/dev/null 2>&1; then
        local bin
        bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
        export PATH="$bin:$PATH"
    fi
    if [ "$(id -u)" = 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
    fi
}

# Puts tansu, a Kafka-compatible broker in Rust, on PATH, building it when missing. The memory
# storage engine needs the dynostore feature; SCRAM users need libsql (and sqlite storage). A
# tansu installed without libsql is rebuilt: cargo records each installed binary's features
# in ~/.cargo/.crates2.json, which is what tells the two apart. The first build takes 20-30
# minutes on 2 cores.
ensure_tansu() {
    export PATH="$HOME/.cargo/bin:$PATH"
    if [ -n "${TANSU_BIN:-}" ]; then
        return
    fi
    if ! command -v tansu >/dev/null 2>&1 || ! tansu_has_libsql; then
        echo "installing tansu 0.6.0 with dynostore and libsql (first time only, ~20-30 min)" >&2
        cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --force
    fi
}

# Whether the tansu cargo installed was built with both features the tests need.
tansu_has_libsql() {
    python3 - "$HOME/.cargo/.crates2.json" <<'PY'
import json, sys
try:
    installs = json.load(open(sys.argv[1]))["installs"]
except (OSError, ValueError, KeyError):
    sys.exit(1)
for name, install in installs.items():
    if name.startswith("tansu 0.6.0 ") and {"dynostore", "libsql"} <= set(install.get("features", [])):
        sys.exit(0)
sys.exit(1)
PY
}

# stunnel4 terminates TLS in front of tansu (which does not apply TLS itself); openssl makes
# the tests' throwaway certificates.
ensure_tls_tools() {
    command -v stunnel4 >/dev/null 2>&1 || apt_install stunnel4
    command -v openssl >/dev/null 2>&1 || apt_install openssl
}

# kafka-python 3.x: a third-party Kafka client the consumer-group tests read the group with,
# as Kafka's tools do, and commit offsets with, as another consumer would.
ensure_kafka_python() {
    if ! python3 -c 'import kafka' >/dev/null 2>&1; then
        echo "installing kafka-python for the consumer-group tests" >&2
        python3 -m pip install --quiet 'kafka-python==3.0.12'
    fi
}

# Runs a PostgreSQL tool as the postgres user when this script runs as root.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# Prometheus and promtool (Debian's prometheus): the monitoring tests check compose's
# Prometheus configuration and alerting rules with promtool and run a real Prometheus.
ensure_prometheus() {
    if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then
        echo "installing Prometheus for the monitoring tests" >&2
        apt_install prometheus
    fi
    command -v promtool >/dev/null 2>&1 || { echo "promtool is not on PATH after installing prometheus" >&2; exit 1; }
}
