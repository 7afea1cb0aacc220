# syntax=docker/dockerfile:1.7
# The gateway image: built from the locked dependency graph, run as a static
# user on distroless (glibc and CA certificates, no shell, no package manager).
# Probes are Kubernetes' job (helm/kasvu-gateway), so there is no HEALTHCHECK.
#
#   docker build -t kasvu-gateway:0.1.0 --build-arg VERSION=0.1.0 \
#     --build-arg REVISION="$(git rev-parse HEAD)" .

ARG RUST_VERSION=1.95.0

FROM docker.io/library/rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY migrations ./migrations
COPY assets ./assets
# The manifest names the integration tests' entry; the image does not build it.
# The registry and target caches survive between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    mkdir -p tests/it && touch tests/it/main.rs \
    && cargo build --release --locked --bin kasvu-gateway \
    && install -D -m 0555 target/release/kasvu-gateway /out/kasvu-gateway

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="kasvu-gateway" \
      org.opencontainers.image.description="GraphQL gateway in front of the KasvuCRM customer register for business services" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="EUPL-1.2" \
      org.opencontainers.image.vendor="KasvuCRM joint controllers" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/kasvu-gateway /usr/local/bin/kasvu-gateway
# The policies the image was built with; the chart mounts its ConfigMap over
# them. Migrations are compiled into the binary (`kasvu-gateway migrate`).
COPY --chown=0:0 policies /etc/kasvu-gateway/policies
ENV POLICY_DIR=/etc/kasvu-gateway/policies \
    LISTEN_ADDR=0.0.0.0:8080 \
    METRICS_ADDR=0.0.0.0:9090 \
    RUST_LOG=info
# 65532 is distroless' nonroot user; numeric, so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/kasvu-gateway"]
CMD ["serve"]
