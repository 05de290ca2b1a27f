# loggate container image.
#   docker build -t loggate .
#   docker run -v $PWD/config/policy.json:/etc/loggate/policy.json:ro -p 8787:8787 loggate
# The image carries no policy: mount one at /etc/loggate/policy.json (or
# mount a config of your own over /etc/loggate/loggate.toml; the image's is
# config/container.toml).

# --- build -------------------------------------------------------------------
FROM rust:1.95-bookworm AS builder
WORKDIR /src
# Dependencies (and the workspace's own library crates under crates/) first,
# built against a dummy gateway crate, so that they stay cached in their own
# layer until the manifests, the lock file or crates/ change. The manifest
# declares bench targets, so they get stubs too (cargo checks they exist).
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN mkdir src benches \
    && echo 'fn main() {}' > src/main.rs \
    && touch src/lib.rs \
    && for b in hotpath memory inspect policy_diff drain access_line percent_decode decision_cache policy_scale; do echo 'fn main() {}' > "benches/$b.rs"; done \
    && cargo build --release --locked --bin loggate \
    && rm -rf src target/release/loggate target/release/deps/loggate-* target/release/deps/libloggate-* \
        target/release/.fingerprint/loggate-*
COPY src ./src
COPY migrations ./migrations
RUN cargo build --release --locked --bin loggate \
    && strip target/release/loggate

# --- run ---------------------------------------------------------------------
FROM debian:bookworm-slim
# ca-certificates: the system roots for TLS to the data plane (unless
# upstream.ca_file is set). Debian's security updates move these versions.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 loggate \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin loggate
COPY --from=builder /src/target/release/loggate /usr/local/bin/loggate
COPY config/container.toml /etc/loggate/loggate.toml
ENV RUST_LOG=info
USER 10001:10001
EXPOSE 8787 9787
# No curl in the slim image: loggate probes its own admin listener.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
    CMD ["loggate", "healthcheck", "--url", "http://127.0.0.1:9787/healthz"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["loggate", "serve", "--config", "/etc/loggate/loggate.toml"]
