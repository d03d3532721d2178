# Sourced by the scripts: a persistent build directory outside the clone unless the caller chose one,
# so CI on a developer machine reuses the build while a fresh machine still works.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/orbas/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
mkdir -p "$CARGO_TARGET_DIR"
# Python tools (schemathesis; the benchmark peer with `setup.sh --bench`) live in this virtualenv.
export ORBAS_VENV="${ORBAS_VENV:-$HOME/.cache/orbas/venv}"
# The Kafka-protocol broker (tansu) that setup.sh builds; tests and the demo find it here.
export ORBAS_TANSU="${ORBAS_TANSU:-${ORBAS_TOOLS:-$HOME/.cache/orbas/tools}/bin/tansu}"
# Local ML models (the sentence encoder all-MiniLM-L6-v2): setup.sh unpacks them here; never downloaded at run time.
export ORBAS_MODELS="${ORBAS_MODELS:-$HOME/.cache/orbas/models}"
