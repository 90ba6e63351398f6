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
# storage engine needs the dynostore feature. The first build takes 15-20 minutes on 2 cores.
ensure_tansu() {
    export PATH="$HOME/.cargo/bin:$PATH"
    if ! command -v tansu >/dev/null 2>&1; then
        echo "installing tansu 0.6.0 (first time only, ~15-20 min)" >&2
        cargo install tansu --version 0.6.0 --locked --features dynostore
    fi
}

# Runs a PostgreSQL tool as the postgres user when this script runs as root.
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
