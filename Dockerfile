# syntax=docker/dockerfile:1
# One image with both binaries: order-server (the entrypoint) and loadgen.
#   docker build -t order-metrics:local --build-arg ORDER_SERVER_COMMIT=$(git rev-parse --short=12 HEAD) .
# The build stage is pinned to the toolchain the project is tested with; the runtime is
# distroless (glibc, CA certificates, no shell, no package manager) running as uid 65532.

ARG RUST_IMAGE=rust:1.95.0-slim-trixie
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src

# Dependency layer: manifests and empty targets only, so editing the sources does not rebuild
# the ~200 dependencies.
COPY Cargo.toml Cargo.lock ./
COPY server/Cargo.toml server/build.rs server/
COPY loadgen/Cargo.toml loadgen/
COPY checks/Cargo.toml checks/
RUN mkdir -p server/src loadgen/src checks/src \
 && echo 'fn main() {}' > server/src/main.rs && touch server/src/lib.rs \
 && echo 'fn main() {}' > loadgen/src/main.rs && touch loadgen/src/lib.rs \
 && touch checks/src/lib.rs \
 && ORDER_SERVER_COMMIT=deps cargo build --release --locked -p order-server -p loadgen \
 && rm -rf server/src loadgen/src checks/src

COPY server server
COPY loadgen loadgen
COPY checks checks
# The commit stamped into order_service_build_info (there is no .git in the build context).
ARG ORDER_SERVER_COMMIT=unknown
ENV ORDER_SERVER_COMMIT=${ORDER_SERVER_COMMIT}
# COPY keeps the files' old modification times; touch them so cargo rebuilds the crates.
RUN find server loadgen -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p order-server -p loadgen \
 && install -D -m 0755 target/release/order-server /out/order-server \
 && install -D -m 0755 target/release/loadgen /out/loadgen

FROM ${RUNTIME_IMAGE}
COPY --from=build /out/order-server /out/loadgen /usr/local/bin/
USER 65532:65532
ENV ORDER_SERVER_LISTEN=0.0.0.0:5001
# 5001: orders, /metrics, /healthz, /readyz (the guide's port). The fault API (--admin-listen)
# and the load generator's --metrics-addr use further ports only when switched on.
EXPOSE 5001
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/order-server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/order-server"]
