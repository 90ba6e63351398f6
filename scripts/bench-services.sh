# Sourced by the benchmark scripts: starts a throwaway PostgreSQL cluster (default durability:
# fsync and synchronous_commit on) and a tansu broker on free ports, stopped on exit.
# Sets DATABASE_URL (superuser) and KAFKA_BROKERS.
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
ensure_postgres
ensure_tansu

bench_dir=$(mktemp -d /tmp/orderstore-bench.XXXXXX)
chmod 755 "$bench_dir"
[ "$(id -u)" = 0 ] && chown postgres "$bench_dir"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
pg_port=$(free_port)
kafka_port=$(free_port)
tansu_pid=""
stop_bench_services() {
    [ -n "$tansu_pid" ] && kill "$tansu_pid" 2>/dev/null
    as_postgres pg_ctl -D "$bench_dir/pg" -m fast -w stop >/dev/null 2>&1 || true
    rm -rf "$bench_dir"
}
trap stop_bench_services EXIT
as_postgres initdb -U postgres --auth=trust -E UTF8 -D "$bench_dir/pg" >/dev/null
as_postgres pg_ctl -D "$bench_dir/pg" -l "$bench_dir/pg.log" -w -o "-p $pg_port -k $bench_dir \
    -c listen_addresses=127.0.0.1 -c shared_buffers=1GB -c max_wal_size=8GB" start >/dev/null
setsid tansu broker --kafka-listener-url "tcp://127.0.0.1:$kafka_port" \
    --kafka-advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine memory://tansu/ >"$bench_dir/tansu.log" 2>&1 &
tansu_pid=$!
export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
export KAFKA_BROKERS="127.0.0.1:$kafka_port"
