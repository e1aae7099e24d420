#!/usr/bin/env bash
# The one test command. On a fresh machine of this kind it provisions everything the tests use
# (Debian packages, a Python virtualenv with the outside reference clients, PostgreSQL and MariaDB
# running and reachable), waits for them, then builds and runs the whole suite.
#
#   scripts/test.sh            provision + run every test
#   scripts/test.sh --no-provision   skip installs (servers are still checked)
#
# It fails loudly when a dependency cannot be provided; it never skips tests.
#
# It touches only what it started: packages are installed with services kept from starting
# (policy-rc.d), a database server it had to start is stopped again on exit — success, failure or
# Ctrl-C — by the pid it recorded (FUNNELGATE_KEEP_SERVICES=1 leaves them running), and nothing is
# ever killed by name. The tests start their own DNS/SMTP/Prometheus instances on free ports.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

provision=1
[ "${1:-}" = "--no-provision" ] && provision=0

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'test.sh: error: %s\n' "$*" >&2; exit 1; }

# ---- Cleanup of what this script started (and only that) ---------------------------------------
state="$(mktemp -d "${TMPDIR:-/tmp}/funnelgate-test.XXXXXX")"
policy_rc_d=""        # set when we created /usr/sbin/policy-rc.d
started_pg_cluster="" # "<version> main" when we started PostgreSQL
started_mariadb_pid="" # the mariadbd we started
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$policy_rc_d" ] && [ -f "$policy_rc_d" ]; then rm -f "$policy_rc_d"; fi
  if [ "${FUNNELGATE_KEEP_SERVICES:-0}" != 1 ]; then
    if [ -n "$started_mariadb_pid" ] && kill -0 "$started_mariadb_pid" 2>/dev/null; then
      log "stopping the MariaDB this script started (pid $started_mariadb_pid)"
      kill -TERM "$started_mariadb_pid" 2>/dev/null || true
    fi
    if [ -n "$started_pg_cluster" ]; then
      log "stopping the PostgreSQL cluster this script started ($started_pg_cluster)"
      # shellcheck disable=SC2086
      pg_ctlcluster --skip-systemctl-redirect $started_pg_cluster stop >/dev/null 2>&1 || true
    fi
  fi
  rm -rf "$state"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

packages() { grep -v '^\s*#' "$1" | sed '/^\s*$/d'; }

if [ "$provision" = 1 ]; then
  # ---- Debian packages -----------------------------------------------------------------------
  missing=()
  while read -r p; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done < <(packages scripts/debian-packages.txt)
  if [ "${#missing[@]}" -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    command -v apt-get >/dev/null || die "apt-get not found: install ${missing[*]} by hand"
    # Debian starts services (nsd, prometheus…) on install; the tests run their own instances.
    # policy-rc.d answering 101 ("action forbidden") keeps invoke-rc.d from starting them, so
    # there is nothing to stop afterwards. An existing policy-rc.d (the admin's) is respected.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\n# written by funnelgate scripts/test.sh for one install; removed after it\nexit 101\n' \
        > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && policy_rc_d=/usr/sbin/policy-rc.d
    fi
    apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
      || die "could not install ${missing[*]}"
    if [ -n "$policy_rc_d" ]; then rm -f "$policy_rc_d"; policy_rc_d=""; fi
  fi

  # ---- Python virtualenv (outside references: checkdmarc, vendor clients, grpcio) -------------
  if [ ! -x .venv/bin/python ]; then
    log "creating virtualenv .venv"
    python3 -m venv .venv || die "python3 -m venv failed (is python3-venv installed?)"
  fi
  want="$(packages scripts/python-requirements.txt | sort | tr '\n' ' ')"
  stamp=".venv/.funnelgate-requirements"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing Python test references into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -r scripts/python-requirements.txt \
      || die "pip install failed"
    echo "$want" > "$stamp"
  fi
  # The official Pipedrive client (npm, pinned by its package-lock.json) for the CRM fidelity test.
  pd_fidelity=crates/checker-crm/tests/fidelity/pipedrive
  if [ ! -f "$pd_fidelity/node_modules/.package-lock.json" ] \
      || ! cmp -s "$pd_fidelity/package-lock.json" "$pd_fidelity/.installed-lock.json"; then
    command -v npm >/dev/null || die "npm is missing (see scripts/debian-packages.txt)"
    log "installing the official Pipedrive client into $pd_fidelity"
    (cd "$pd_fidelity" && npm ci --no-audit --no-fund --ignore-scripts --silent) || die "npm ci failed in $pd_fidelity"
    cp "$pd_fidelity/package-lock.json" "$pd_fidelity/.installed-lock.json"
  fi

  # ---- npm packages the browser tests inject (axe-core 4.14.1, pinned in tests/node/package*.json) --
  command -v npm >/dev/null || die "npm is missing (install the Debian package npm)"
  if ! grep -qs '"version": "4.14.1"' tests/node/node_modules/axe-core/package.json; then
    log "installing npm test packages into tests/node"
    (cd tests/node && npm ci --no-audit --no-fund) || die "npm ci in tests/node failed"
  fi
fi

# ---- Real peers: PostgreSQL and MariaDB --------------------------------------------------------
wait_for() { # name, command...
  local name="$1"; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  die "$name is not reachable"
}

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  log "starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null; then
    pg_version="$(ls /etc/postgresql | head -n1)"
    if pg_ctlcluster --skip-systemctl-redirect "$pg_version" main start; then
      started_pg_cluster="$pg_version main"
    fi
  fi
fi
wait_for "PostgreSQL on 127.0.0.1:5432" pg_isready -h 127.0.0.1 -p 5432 -q
psql -h 127.0.0.1 -U postgres -d test -c 'select 1' >/dev/null 2>&1 \
  || psql -h 127.0.0.1 -U postgres -c 'create database test' >/dev/null \
  || die "cannot reach or create PostgreSQL database 'test' as user postgres"

if ! mariadb -h 127.0.0.1 -P 3306 -u root -e 'select 1' >/dev/null 2>&1; then
  log "starting MariaDB"
  if start-stop-daemon --start --background --make-pidfile --pidfile "$state/mariadbd.pid" \
      --exec /usr/sbin/mariadbd; then
    started_mariadb_pid="$(cat "$state/mariadbd.pid")"
  fi
fi
wait_for "MariaDB on 127.0.0.1:3306" mariadb -h 127.0.0.1 -P 3306 -u root -e 'select 1'
mariadb -h 127.0.0.1 -P 3306 -u root -e 'create database if not exists test' \
  || die "cannot create MariaDB database 'test'"

# ---- Tools the tests start themselves -----------------------------------------------------------
for tool in /usr/sbin/nsd /usr/bin/prometheus openssl node /usr/bin/chromium; do
  command -v "$tool" >/dev/null || die "$tool is missing (see scripts/debian-packages.txt)"
done
.venv/bin/python -c 'import checkdmarc, hubspot, simple_salesforce, grpc, aiosmtpd' \
  || die "the Python test references are missing from .venv"
[ -f tests/node/node_modules/axe-core/axe.min.js ] || die "axe-core is missing from tests/node (run scripts/test.sh without --no-provision)"

export FUNNELGATE_PYTHON="$repo/.venv/bin/python"
export FUNNELGATE_TEST_POSTGRES_URL="${FUNNELGATE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}"
export FUNNELGATE_TEST_MYSQL_URL="${FUNNELGATE_TEST_MYSQL_URL:-mysql://root@127.0.0.1:3306/test}"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# ---- Build and test ----------------------------------------------------------------------------
log "building the funnelgate binary (end-to-end tests start it)"
cargo build --locked -p funnelgate
log "running the test suite"
cargo test --locked --workspace --all-targets
log "running doc tests"
cargo test --locked --workspace --doc

# ---- Fuzzing (issue 9) ---------------------------------------------------------------------------
# Every fuzz target in fuzz/ (config, durations, thresholds, probe params, SPF, DMARC, DKIM, vendor
# JSON, CheckResponse decoding) for a bounded time each, on the stable toolchain; any crash fails
# and prints the crashing input. FUNNELGATE_FUZZ_SECONDS sets the time per target.
log "fuzzing the parsers that read outside input"
scripts/fuzz.sh "${FUNNELGATE_FUZZ_SECONDS:-20}"
