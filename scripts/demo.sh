#!/usr/bin/env bash
# The main job: Postgres (embedded unless DATABASE_URL is set), schema, demo data, the API server.
# Extra arguments go to `orbas demo` (e.g. --scale 1 --tenants 5, --exit-when-ready).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
. scripts/env.sh
cargo build --release --locked -p orbas-api --bin orbas
exec "$CARGO_TARGET_DIR/release/orbas" demo "$@"
