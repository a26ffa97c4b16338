# syntax=docker/dockerfile:1
# One image with both binaries: order-server (the entrypoint) and loadgen.
#   docker build -t order-metrics:local --build-arg ORDER_SERVER_COMMIT=$(git rev-parse --short=12 HEAD) .
# The build stage is pinned to the toolchain the project is tested with; the runtime is
# distroless (glibc, CA certificates, no shell, no package manager) running as uid 65532.
# checks/tests/image.rs rehearses the build stage on the host: it copies what COPY copies
# (less .dockerignore) and runs the RUN steps, then starts the binaries.

ARG RUST_IMAGE=rust:1.95.0-slim-trixie
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian13:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src
# The whole workspace, so a crate added to it needs no edit here; .dockerignore keeps
# target/, .git/ and the folders no crate builds from out of the context.
COPY . .
# The commit stamped into order_service_build_info (there is no .git in the build context);
# without one the metric has no commit label. Compose passes it from the shell's
# ORDER_SERVER_COMMIT.
ARG ORDER_SERVER_COMMIT=
ENV ORDER_SERVER_COMMIT=${ORDER_SERVER_COMMIT}
# BuildKit cache mounts keep the crates registry and target/ between builds, so editing the
# sources rebuilds only the workspace crates. They are not part of the image, so the
# binaries are copied out of target/.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p order-server -p loadgen \
 && install -D -m 0755 target/release/order-server out/order-server \
 && install -D -m 0755 target/release/loadgen out/loadgen

FROM ${RUNTIME_IMAGE}
COPY --from=build /src/out/order-server /src/out/loadgen /usr/local/bin/
USER 65532:65532
ENV ORDER_SERVER_LISTEN=0.0.0.0:5001
# 5001: orders, /metrics, /healthz, /readyz (the guide's port). The fault API (--admin-listen)
# and the load generator's --metrics-addr use further ports only when switched on.
EXPOSE 5001
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/order-server", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/order-server"]
