#!/usr/bin/env bash
# Fuzzes the spec loader, the inventory reader and the whole validate path with cargo fuzz
# (libFuzzer), SECONDS each (default 60). A crash, a run over 2 s or an allocation over 1 GiB
# fails: the input is saved under fuzz/artifacts/TARGET/ and the script exits 1.
#
#   tests/fuzz.sh 60          # the issue's run: 60 s per target
#   tests/fuzz.sh 5 inventory # one target
#
# Needs the nightly toolchain (rustup toolchain install nightly) and cargo-fuzz, which this
# script installs from crates.io when missing. Seeds: the examples, the golden specs and the
# CLI's fixtures (spec targets), the golden and fixture inventories and fuzz/seeds/ (inventory
# target), copied into fuzz/corpus/ (not committed; libFuzzer adds what it finds there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(spec_loader inventory validate)

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    cargo +nightly install cargo-fuzz --locked
fi

# fuzz/ is a workspace of its own, resolved apart from the main one: fuzz/Cargo.lock pins it,
# and to the versions the workspace ships (Cargo.lock), so a crash found here is in the code
# users run and reproduces on any checkout.
relock="cp Cargo.lock fuzz/Cargo.lock && cargo metadata --manifest-path fuzz/Cargo.toml --format-version 1 >/dev/null"
if ! cargo metadata --manifest-path fuzz/Cargo.toml --format-version 1 --locked >/dev/null 2>&1; then
    echo "fuzz/Cargo.lock is missing or out of date with fuzz/Cargo.toml; regenerate it: $relock" >&2
    exit 1
fi
stale=$(awk 'FNR == 1 { n = "" } /^name = /{n=$3} /^version = / && n != "" {
        if (FILENAME == ARGV[1]) { shipped[n] = 1; pinned[n " " $3] = 1 }
        else if ((n in shipped) && !((n " " $3) in pinned)) print n, $3 }' \
    Cargo.lock fuzz/Cargo.lock | tr -d '"')
if [ -n "$stale" ]; then
    echo "fuzz/Cargo.lock has versions the workspace does not ship:" $stale >&2
    echo "regenerate it: $relock" >&2
    exit 1
fi

seed() {
    local dir=fuzz/corpus/$1
    shift
    mkdir -p "$dir"
    for file in "$@"; do
        cp "$file" "$dir/seed-$(echo "$file" | tr '/' '_')"
    done
}
# A pattern that matches nothing adds nothing (rather than its own text).
shopt -s nullglob
specs=(examples/*/*.yaml operator/core/tests/golden/*/spec.yaml cli/tests/fixtures/alias-bomb.yaml)
inventories=(operator/core/tests/golden/*/inventory.yaml cli/tests/fixtures/inventory-*.yaml fuzz/seeds/*.json)
seed spec_loader "${specs[@]}"
seed validate "${specs[@]}"
seed inventory "${inventories[@]}"

mkdir -p target/fuzz-logs
failed=0
for target in "${targets[@]}"; do
    echo "== fuzz $target for ${seconds}s" >&2
    log=target/fuzz-logs/$target.log
    status=0
    # -timeout: a run over 2 s is a hang; -rss_limit_mb / -malloc_limit_mb: 1 GiB.
    cargo +nightly fuzz run --release "$target" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -timeout=2 -rss_limit_mb=1024 -malloc_limit_mb=1024 \
        -max_len=65536 -print_final_stats=1 >"$log" 2>&1 || status=$?
    grep -E "^(Done [0-9]+ runs|stat::number_of_executed_units|stat::peak_rss_mb|stat::slowest_unit_time_sec)" "$log" >&2 || true
    if [ "$status" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "FAILED: fuzz $target (the input is under fuzz/artifacts/$target/; log $log)" >&2
        failed=1
    fi
done
exit $failed
