#!/usr/bin/env bash
# The main job on one machine: build funnelgate, create the offline quickstart (a broken marketing
# warehouse in SQLite) in ./acme-demo unless it exists, and run the coordinator with all four
# stage checkers in one process (`funnelgate up`) on the embedded SQLite store.
#
#   scripts/quickstart.sh [DIR]      (default DIR: acme-demo)
#
# Then, in another terminal:  target/release/funnelgate gate status acme
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir="${1:-acme-demo}"
cd "$repo"
cargo build --release --locked -p funnelgate
bin="$repo/target/release/funnelgate"
if [ ! -f "$dir/funnelgate.toml" ]; then
  "$bin" quickstart init "$dir"
fi
echo "funnelgate: ask the gate with:  $bin gate status acme" >&2
exec "$bin" up --config "$dir/funnelgate.toml"
