# The orderstore image: built with the official Rust image, run on a slim Debian with only the
# binary and CA certificates, as a non-root user. compose.yaml builds it and runs it next to
# Kafka and PostgreSQL.

# ---- Build stage ---------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src

# Dependencies first: a build of a dummy crate with the real manifest and lock file compiles
# every dependency into a layer that stays cached until Cargo.toml or Cargo.lock change, so
# editing the source rebuilds only orderstore itself.
# Cargo.toml declares the criterion benchmarks, so their files must exist for the manifest to
# load. The release build of the binary never compiles them, so these stand-ins stay for the
# real build too, and editing a benchmark does not rebuild the image.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src benches \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && for bench in contract memory postgres_batch; do echo 'fn main() {}' > "benches/$bench.rs"; done \
    && cargo build --release --locked --bin orderstore \
    && rm -rf src

# The real source, and the only files outside it that the binary includes at compile time:
# static/, built into the HTTP page. What only tests include (.env, tests/data) stays out, so
# that editing .env does not rebuild the crate and none of its values lands in a layer.
COPY src ./src
COPY static ./static
# COPY keeps the files' modification times, which can be older than the dummy build; cargo
# would then take the dummy library and binary for up to date. Touching the crate roots makes
# it rebuild them.
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin orderstore \
    && cp target/release/orderstore /usr/local/bin/orderstore

# ---- Runtime stage -------------------------------------------------------------------------
FROM debian:bookworm-slim

# CA certificates only, for a TLS connection a deployment may configure; there is no shell
# tooling such as curl, so the health check is the binary's own `orderstore healthcheck`.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/*

# A fixed, numeric, unprivileged user, so orchestrators can verify it is not root.
RUN groupadd --system --gid 10001 orderstore \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin orderstore

COPY --from=build /usr/local/bin/orderstore /usr/local/bin/orderstore

USER 10001:10001
# Settings come from the environment (compose passes .env through env_file); inside a container
# the HTTP server must listen on every interface, not only on loopback.
ENV HTTP_ADDR=0.0.0.0:8080
EXPOSE 8080
# orderstore handles SIGTERM itself (it drains the channel and stores the last offsets), so it
# runs directly as PID 1 without a shell in between.
ENTRYPOINT ["/usr/local/bin/orderstore"]
