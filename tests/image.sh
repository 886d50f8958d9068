#!/usr/bin/env bash
# Builds the kelvin-operator image without a Docker engine and checks it:
#
#   1. a static binary: `cargo build --release` with `-C target-feature=+crt-static` on the gnu
#      target, in its own target directory (outside the repository, so the shared debug build
#      is not invalidated): $KELVIN_STATIC_TARGET_DIR, default ~/.cache/kelvin/static-target;
#   2. packed FROM scratch by podman (`--storage-driver vfs`, its own store: a fresh one per
#      run, or KELVIN_PODMAN_STORE), as the Dockerfile's last stage does;
#   3. checks: the entrypoint is /kelvin-operator, the user is 65532:65532 (the chart's
#      runAsUser), the image holds that one file, and the binary inside starts (`--help`):
#      run in a container when this machine can run one, else taken out of the image and run
#      here.
#
# Without podman it says so and skips (exit 0): install it with `apt-get install podman`.
# The image stays in the store as localhost/kelvin-operator:<workspace version>.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

log() { printf 'tests/image.sh: %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

if ! command -v podman >/dev/null 2>&1; then
  log "SKIPPED: podman is not installed, so the kelvin-operator image was neither built nor checked (apt-get install podman)"
  exit 0
fi

version="$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)"
[[ -n "$version" ]] || die "no version in Cargo.toml's [workspace.package]"
triple="$(uname -m)-unknown-linux-gnu"
target_dir="${KELVIN_STATIC_TARGET_DIR:-$HOME/.cache/kelvin/static-target}"
image="localhost/kelvin-operator:$version"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# The store holds one FROM-scratch image: a fresh one per run by default. Its runroot lives
# beside it: podman records the runroot in the store's database and refuses a store reused
# with another one ("database configuration mismatch").
store="${KELVIN_PODMAN_STORE:-$work/podman}"
pod=(podman --storage-driver vfs --root "$store/root" --runroot "$store/runroot")

log "building the static kelvin-operator ($triple, target dir $target_dir; a cold build takes minutes)"
CARGO_TARGET_DIR="$target_dir" RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "$triple" -p kelvin-operator
bin="$target_dir/$triple/release/kelvin-operator"
[[ -x "$bin" ]] || die "$bin was not built"
# ldd (glibc's) says "not a dynamic executable" or "statically linked" for a static binary.
if ldd "$bin" 2>&1 | grep -q '=>'; then
  die "$bin is linked dynamically: $(ldd "$bin" 2>&1 | tr '\n' ' ')"
fi

mkdir "$work/context"
cp "$bin" "$work/context/kelvin-operator"
cat >"$work/context/Containerfile" <<CONTAINERFILE
FROM scratch
COPY kelvin-operator /kelvin-operator
USER 65532:65532
EXPOSE 8080
LABEL org.opencontainers.image.title=kelvin-operator org.opencontainers.image.version=$version
ENTRYPOINT ["/kelvin-operator"]
CONTAINERFILE
log "packing $image (podman, vfs storage in $store)"
"${pod[@]}" build --quiet --tag "$image" "$work/context" >/dev/null

entrypoint="$("${pod[@]}" image inspect --format '{{json .Config.Entrypoint}}' "$image")"
[[ "$entrypoint" == '["/kelvin-operator"]' ]] || die "entrypoint is $entrypoint, not [\"/kelvin-operator\"]"
user="$("${pod[@]}" image inspect --format '{{.Config.User}}' "$image")"
[[ "$user" == "65532:65532" ]] || die "user is '$user', not 65532:65532"

# The image's files: exactly the binary.
cid="$("${pod[@]}" create "$image")"
"${pod[@]}" export "$cid" >"$work/rootfs.tar"
"${pod[@]}" rm "$cid" >/dev/null
files="$(tar -tf "$work/rootfs.tar" | grep -v '/$' | sort | tr '\n' ' ')"
[[ "$files" == "kelvin-operator " ]] || die "the image holds more than the binary: $files"

check_help() { # output of --help
  grep -q -- '--leader-elect' <<<"$1" && grep -q -- '--http-address' <<<"$1"
}
if help="$("${pod[@]}" run --rm --network none "$image" --help 2>"$work/run.err")"; then
  check_help "$help" || die "--help in the container printed no flags: $help"
  log "the binary starts in a container (--help)"
else
  # Sandboxes without user namespaces or cgroups cannot run containers; the binary is the
  # same file, so run it from the image's filesystem instead.
  log "running a container does not work here ($(tail -1 "$work/run.err")); running the image's binary outside one"
  mkdir "$work/rootfs"
  tar -xf "$work/rootfs.tar" -C "$work/rootfs"
  help="$(env -i "$work/rootfs/kelvin-operator" --help)" || die "the image's binary does not start"
  check_help "$help" || die "the image's binary printed no flags: $help"
  log "the image's binary starts (--help)"
fi
size="$("${pod[@]}" image inspect --format '{{.Size}}' "$image")"
log "ok: $image, entrypoint /kelvin-operator, user 65532:65532, $((size / 1024 / 1024)) MiB"
