#!/usr/bin/env bash
# Fuzz the parsers that read outside input (issue 9): builds every target in fuzz/ once, then runs
# each for a bounded time and fails on any crash, printing the crashing input.
#
#   scripts/fuzz.sh                 every target, 20 s each (CI: the whole step takes a few minutes)
#   scripts/fuzz.sh 600             every target, 10 minutes each
#   scripts/fuzz.sh 3600 spf dmarc  only these targets, an hour each
#
# Tooling: cargo-fuzz (libFuzzer) with `--sanitizer none`, which builds on the stable toolchain
# (no nightly, no RUSTC_BOOTSTRAP): coverage comes from `-Cpasses=sancov-module`; there is no
# AddressSanitizer, which safe Rust (`unsafe_code = "forbid"`) does not need to find panics,
# overflows (debug assertions are on) and hangs. Installed with `cargo install` when missing.
# New inputs found during a run go to a scratch directory, not into the committed seed corpora
# (fuzz/corpus/<target>/); crashes are written to fuzz/artifacts/<target>/.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo/fuzz"

CARGO_FUZZ_VERSION="0.13.2"
seconds="${1:-20}"
shift || true
case "$seconds" in
  ''|*[!0-9]*) echo "fuzz.sh: SECONDS_PER_TARGET must be a whole number, got '$seconds'" >&2; exit 64 ;;
esac

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! cargo fuzz --version 2>/dev/null | grep -qF "$CARGO_FUZZ_VERSION"; then
  log "installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi

# One build for every target: release, debug assertions (integer overflow is a crash), no sanitizer.
build_flags=(--sanitizer none --debug-assertions --release)
log "building ${#targets[@]} fuzz targets"
cargo fuzz build "${build_flags[@]}"
host="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="$repo/fuzz/target/$host/release"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

failed=()
for t in "${targets[@]}"; do
  [ -x "$bin_dir/$t" ] || { echo "fuzz.sh: no such fuzz target: $t" >&2; exit 64; }
  mkdir -p "artifacts/$t" "corpus/$t" "$scratch/$t"
  out="$scratch/$t.log"
  log "fuzzing $t for ${seconds}s"
  set +e
  "$bin_dir/$t" \
    -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    -artifact_prefix="artifacts/$t/" "$scratch/$t" "corpus/$t" >"$out" 2>&1
  rc=$?
  set -e
  if [ "$rc" -eq 0 ]; then
    grep -E '^stat::number_of_executed_units|^stat::average_exec_per_sec|^stat::new_units_added' "$out" \
      | sed "s/^/    $t: /" >&2 || true
    grep -E '^vendor_json: ' "$out" | sed 's/^/    /' >&2 || true
    continue
  fi
  failed+=("$t")
  echo "---- $t FAILED (exit $rc); the end of its log:" >&2
  tail -n 60 "$out" >&2
  for f in $(grep -oE "artifacts/$t/[A-Za-z]+-[0-9a-f]+" "$out" | sort -u); do
    echo "---- crashing input $f ($(wc -c <"$f") bytes):" >&2
    od -A d -c "$f" | head -n 40 >&2
    echo "---- reproduce: (cd fuzz && cargo fuzz run ${build_flags[*]} $t $f)" >&2
  done
done

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz.sh: ${#failed[@]} of ${#targets[@]} targets crashed: ${failed[*]}" >&2
  exit 1
fi
log "fuzzing: ${#targets[@]} targets, ${seconds}s each, 0 crashes"
