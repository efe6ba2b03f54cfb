# syntax=docker/dockerfile:1
# Build: the production-profile binary (release + fat LTO), with dependencies cached in their own layer.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
# Debian's point releases patch these; pinning exact versions would break the build on each one.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && echo 'fn main() {}' > src/main.rs && echo '' > src/lib.rs \
 && cargo build --profile production --locked \
 && rm -rf src
COPY src ./src
COPY migrations ./migrations
RUN touch src/main.rs src/lib.rs && cargo build --profile production --locked

# Run: a small image, an unprivileged user, the SQLite data directory as a volume.
FROM debian:bookworm-slim
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 mango \
 && useradd --system --uid 10001 --gid mango --home-dir /app --shell /usr/sbin/nologin mango \
 && mkdir -p /app /data \
 && chown 10001:10001 /data
WORKDIR /app
COPY --from=build /src/target/production/mango-store /usr/local/bin/mango-store
COPY fixtures ./fixtures
ENV MANGO_BIND=0.0.0.0:8080 \
    MANGO_DATABASE_URL=sqlite:///data/mango-store.db \
    MANGO_LOG_FORMAT=json
VOLUME ["/data"]
EXPOSE 8080
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8080/healthz"]
ENTRYPOINT ["mango-store"]
CMD ["serve"]
