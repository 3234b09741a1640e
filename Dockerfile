# syntax=docker/dockerfile:1
# stamp-operator: a static-ish Rust binary on distroless, run as non-root with no shell.
#
#   docker build --build-arg VERSION=0.1.0 -t ghcr.io/missioncritical-dev/stamp-operator:0.1.0 .
#
# Reproducible from the lock file: `cargo build --locked` refuses to resolve anything that
# Cargo.lock does not pin; the base images should be pinned by digest in CI.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Dependencies first, so a source change does not rebuild them (a throwaway main fills in; the
# manifest names a bench target, whose file must exist even though the image never builds it).
COPY Cargo.toml Cargo.lock ./
RUN mkdir -p src benches && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && echo 'fn main() {}' > benches/scale.rs \
    && cargo build --release --locked --bin stamp-operator \
    && rm -rf src
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --release --locked --bin stamp-operator \
    && install -D -m 0755 target/release/stamp-operator /out/stamp-operator

# glibc and libgcc only (aws-lc links against them); no shell, no package manager.
FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="stamp-operator" \
      org.opencontainers.image.description="Kubernetes operator for network-restricted, mission-critical Azure deployment stamps" \
      org.opencontainers.image.source="https://github.com/missioncritical-dev/stamp-operator" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/stamp-operator /usr/local/bin/stamp-operator
# 65532 is distroless's "nonroot"; the chart sets the same ids and a read-only root filesystem.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["stamp-operator"]
CMD ["run"]
