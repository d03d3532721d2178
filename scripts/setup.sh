#!/usr/bin/env bash
# Installs what Orbas needs on a Debian machine, idempotently: only what is missing is installed.
#   - Postgres 15 server and client (the embedded cluster runs from these binaries)
#   - a C toolchain and pkg-config for crates that build C
#   - cargo-nextest (the test runner)
# Safe to run repeatedly; the demo and test scripts call it first.
set -euo pipefail

need_apt=()
have() { command -v "$1" >/dev/null 2>&1; }
pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

pg_bin_ok=false
for d in /usr/lib/postgresql/*/bin; do
  [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && pg_bin_ok=true
done
$pg_bin_ok || need_apt+=(postgresql)
have psql || need_apt+=(postgresql-client)
have cc || need_apt+=(build-essential)
have pkg-config || need_apt+=(pkg-config)
have curl || need_apt+=(curl)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian starts a system cluster on install; Orbas runs its own clusters, so leave it be but don't need it.
fi

if ! have cargo; then
  echo "setup: cargo not found — install Rust (rustup) first" >&2
  exit 1
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  echo "setup: installing cargo-nextest"
  cargo install cargo-nextest --locked --quiet
fi

# The embedded cluster runs as this OS user when started by root (initdb refuses root).
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi
echo "setup: ok"
