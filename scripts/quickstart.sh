#!/usr/bin/env bash
# The main job on one machine: build funnelgate, put `funnelgate` on your PATH, create the offline
# quickstart (a broken marketing warehouse in SQLite) in ./acme-demo unless it exists, and run the
# coordinator with all four stage checkers in one process (`funnelgate up`) on the embedded
# SQLite store.
#
#   scripts/quickstart.sh [DIR]      (default DIR: acme-demo)
#
# The first build compiles the whole workspace in release mode: about ten minutes on a two-core
# machine (cargo shows its progress); later runs take seconds.
#
# `funnelgate` on the PATH: a symlink to target/release/funnelgate in the first of
# $FUNNELGATE_BIN_DIR, ${CARGO_HOME:-~/.cargo}/bin, ~/.local/bin that is on your PATH (rustup puts
# ~/.cargo/bin there). If none is, every command this script prints is the binary's full path.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-acme-demo}"
cd "$repo"

say() { printf 'quickstart: %s\n' "$*" >&2; }

bin="$repo/target/release/funnelgate"
if [ -x "$bin" ]; then
  say "building funnelgate (release; already built once, so this is quick unless the sources changed)"
else
  say "building funnelgate in release mode for the first time: about ten minutes on two cores;"
  say "cargo prints each crate as it compiles it"
fi
cargo build --release --locked -p funnelgate

# Put `funnelgate` on the PATH so the commands it prints run as printed.
on_path() { case ":$PATH:" in *":$1:"*) return 0 ;; *) return 1 ;; esac; }
link_dir=""
for d in ${FUNNELGATE_BIN_DIR:+"$FUNNELGATE_BIN_DIR"} "${CARGO_HOME:-$HOME/.cargo}/bin" "$HOME/.local/bin"; do
  if on_path "$d"; then link_dir="$d"; break; fi
done
if [ -n "$link_dir" ]; then
  mkdir -p "$link_dir"
  target="$link_dir/funnelgate"
  if [ -e "$target" ] && [ ! -L "$target" ]; then
    say "$target exists and is not a symlink: left alone; the commands below use the full path"
  else
    ln -sfn "$bin" "$target"
    hash -r 2>/dev/null || true
    say "linked $target -> $bin (so \`funnelgate\` works in any shell)"
  fi
else
  say "none of \$FUNNELGATE_BIN_DIR, ~/.cargo/bin, ~/.local/bin is on your PATH: commands below use the full path"
fi

if [ ! -f "$dir/funnelgate.toml" ]; then
  "$bin" quickstart init "$dir" >/dev/null
  say "created the demo in $dir (funnelgate.toml, warehouse.db with a broken funnel, fix.sql)"
else
  say "using the existing demo in $dir"
fi
say "starting the coordinator and the four checkers; it prints how to ask the gate (in another terminal)"
exec "$bin" up --config "$dir/funnelgate.toml"
