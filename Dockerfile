# kelvin-operator's image, for machines with a Docker engine (or `podman build`):
#
#   docker build -t kelvin-operator:0.1.0 .
#
# Stage 1 builds one static binary (glibc linked in, `-C target-feature=+crt-static`: the
# operator resolves no host names through NSS, it reaches the API server by the IP in
# KUBERNETES_SERVICE_HOST); stage 2 is that binary alone on an empty filesystem, run as a
# non-root user. tests/image.sh builds the same image without Docker (podman, FROM scratch)
# and checks it.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    triple="$(uname -m)-unknown-linux-gnu" \
 && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --target "$triple" -p kelvin-operator \
 && cp "target/$triple/release/kelvin-operator" /kelvin-operator

FROM scratch
COPY --from=build /kelvin-operator /kelvin-operator
# 65532: the chart's runAsUser (the "nonroot" user of distroless images); numeric, as
# there is no /etc/passwd in the image and runAsNonRoot needs a number to check.
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/kelvin-operator"]
