#!/usr/bin/env bash
# The whole test suite: formatting, lints, then every test (unit, property, integration against real
# Postgres clusters the tests start themselves). `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. scripts/env.sh

started=$(date +%s)
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo nextest run --workspace --locked --no-fail-fast
echo "test.sh: done in $(( $(date +%s) - started ))s"
