#!/usr/bin/env bash
# Issue #3: req/s and p50/p99 latency of two Orbas endpoints at 64 connections, side by side in the same
# run with the service a team would otherwise write (bench/api/peer: FastAPI + asyncpg under uvicorn):
#   GET  /v1/opportunities?status=open&limit=50   a filtered list page
#   POST /v1/tasks                                an insert plus its audit row, in one transaction
# One `orbas demo` provides the embedded Postgres, schema, data and the Orbas server. The peer runs against
# the same database as the same unprivileged app login, and both are called with the same access token
# (same signing key, same sessions table): both do the same auth, session, team and RLS work.
#
# Per (endpoint, service): a fresh login (tokens live 15 minutes), one request that must answer 2xx
# (otherwise the row is "not run"), a warm-up, the measured wrk run. Prints a markdown table and the peak
# RSS of both servers. Exits 1 when a row was not run or saw an error: a table of 401s is no benchmark.
#
# Environment [default]:
#   ORBAS_BIN             prebuilt orbas binary [built here: cargo build --release]
#   BENCH_DURATION        measured seconds per row [20]     BENCH_WARMUP   warm-up seconds per row [5]
#   BENCH_CONNECTIONS     concurrent connections [64]       BENCH_THREADS  wrk threads [2]
#   BENCH_TENANTS         demo tenants [2]                  BENCH_SCALE    demo size [0.1]
#   ORBAS_PEER_WORKERS    uvicorn worker processes [CPUs]
#   ORBAS_PEER_POOL_SIZE  asyncpg connections per worker [16 / workers: both sides hold Orbas' 16]
#   BENCH_KEEP=1          keep the work directory with the logs [kept only when something failed]
set -euo pipefail
cd "$(dirname "$0")/.."

duration="${BENCH_DURATION:-20}"
warmup="${BENCH_WARMUP:-5}"
connections="${BENCH_CONNECTIONS:-64}"
threads="${BENCH_THREADS:-2}"
tenants="${BENCH_TENANTS:-2}"
scale="${BENCH_SCALE:-0.1}"
start_timeout="${BENCH_START_TIMEOUT:-600}"
list_path="/v1/opportunities?status=open&limit=50"
create_path="/v1/tasks"
app_user="orbas_api" # the login `orbas demo` provisions (member of orbas_app, no BYPASSRLS)

if [ -n "${ORBAS_BIN:-}" ]; then
  ./scripts/setup.sh --bench --no-rust
  . scripts/env.sh
else
  ./scripts/setup.sh --bench
  . scripts/env.sh
  cargo build --release --locked -p orbas-api --bin orbas
  ORBAS_BIN="$CARGO_TARGET_DIR/release/orbas"
fi
venv="${ORBAS_VENV:-$HOME/.cache/orbas/venv}"
py="$venv/bin/python"
workers="${ORBAS_PEER_WORKERS:-$(nproc)}"
pool_size="${ORBAS_PEER_POOL_SIZE:-$(((16 + workers - 1) / workers))}"

work="$(mktemp -d "${TMPDIR:-/tmp}/orbas-bench-api.XXXXXX")"
chmod 755 "$work" # run as root, the embedded cluster runs as the postgres OS user and must reach its dir
demo_pid=""
peer_pid=""

log() { echo "bench-api: $*" >&2; }
fail() { # message [log file]
  log "$1"
  [ -n "${2:-}" ] && tail -n 40 "$2" >&2
  exit 1
}

stop() { # pid: SIGTERM, up to 30 s to exit, then SIGKILL
  local pid="$1"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$peer_pid"
  stop "$demo_pid" # on SIGTERM, demo stops its embedded cluster before exiting
  # Its watchdog stops the cluster even if demo died; wait for the postmaster of our data directory.
  for _ in $(seq 30); do
    pgrep -f -- "-D $work/pg/" >/dev/null || break
    sleep 1
  done
  pgrep -f -- "-D $work/pg/" >/dev/null && log "warning: a postgres of $work/pg is still running"
  if [ "$rc" -ne 0 ] || [ "${BENCH_KEEP:-0}" = 1 ]; then
    log "logs kept in $work"
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

secret() { "$py" -c 'import secrets; print(secrets.token_hex(24))'; }
free_port() { "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
json_field() { "$py" -c 'import json, sys; v = json.load(sys.stdin)
for k in sys.argv[1].split("."): v = v[int(k)] if isinstance(v, list) else v[k]
print(v)' "$1"; }

# --- Orbas: Postgres, schema, data, server --------------------------------------------------------------
jwt_secret="$(secret)"
app_password="$(secret)"
orbas_port="$(free_port)"
peer_port="$(free_port)"
orbas="http://127.0.0.1:$orbas_port"
peer="http://127.0.0.1:$peer_port"

log "starting orbas demo ($ORBAS_BIN; $tenants tenants, scale $scale)"
# Secrets through the environment (the --jwt-secret / --app-password flags' variables), not argv.
ORBAS_JWT_SECRET="$jwt_secret" ORBAS_APP_PASSWORD="$app_password" \
  "$ORBAS_BIN" demo --tenants "$tenants" --scale "$scale" --http-addr "127.0.0.1:$orbas_port" \
  --data-dir "$work/pg" >"$work/demo.log" 2>&1 &
demo_pid=$!
deadline=$((SECONDS + start_timeout))
until grep -q '^Orbas demo is up' "$work/demo.log"; do
  kill -0 "$demo_pid" 2>/dev/null || fail "orbas demo exited before it was up:" "$work/demo.log"
  [ "$SECONDS" -lt "$deadline" ] || fail "orbas demo not up after ${start_timeout}s:" "$work/demo.log"
  sleep 1
done
curl -sf -o /dev/null "$orbas/readyz" || fail "orbas is up but not ready:" "$work/demo.log"

# The banner: "Postgres  postgres://…@127.0.0.1:PORT/orbas (embedded)" and "tenant <slug>  admin <email>".
db_addr="$(sed -n 's#^ *Postgres *[a-z]*://[^@]*@\([^/ ]*\)/\([^ ]*\) .*#\1 \2#p' "$work/demo.log" | head -n 1)"
read -r db_hostport db_name <<<"$db_addr"
[ -n "${db_name:-}" ] || fail "no Postgres address in the demo banner:" "$work/demo.log"
# Tenant 1 (slug ending in -1) if listed, else the first tenant shown.
read -r tenant_slug admin_email < <(awk '$1 == "tenant" && $3 == "admin" {
    if (!first) first = $2 " " $4
    if ($2 ~ /-1$/) { pick = $2 " " $4; exit }
  } END { print (pick ? pick : first) }' "$work/demo.log")
[ -n "${admin_email:-}" ] || fail "no tenant admin in the demo banner:" "$work/demo.log"
log "orbas at $orbas, Postgres at $db_hostport/$db_name, acting as $admin_email (admin of $tenant_slug)"

pg_super() { # SQL as the cluster's superuser (row-level security does not apply): counts for the checks
  PGPASSWORD="$(cat "$work/pg/superuser.password")" psql -X -q -At -h "${db_hostport%:*}" \
    -p "${db_hostport##*:}" -U postgres -d "$db_name" -c "$1"
}

# --- the peer: FastAPI + asyncpg under uvicorn ------------------------------------------------------------
loop=asyncio
http=h11
"$py" -c 'import uvloop' 2>/dev/null && loop=uvloop
"$py" -c 'import httptools' 2>/dev/null && http=httptools
log "starting the peer: uvicorn, $workers workers ($loop, $http), $pool_size DB connections each"
ORBAS_JWT_SECRET="$jwt_secret" ORBAS_PEER_POOL_SIZE="$pool_size" \
  ORBAS_PEER_DATABASE_URL="postgres://$app_user:$app_password@$db_hostport/$db_name" \
  "$venv/bin/uvicorn" app:app --app-dir bench/api/peer --host 127.0.0.1 --port "$peer_port" \
  --workers "$workers" --loop "$loop" --http "$http" --no-access-log --log-level warning \
  >"$work/peer.log" 2>&1 &
peer_pid=$!
deadline=$((SECONDS + 60))
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$peer$list_path")" = 401 ] &&
  [ "$(pgrep -P "$peer_pid" -f 'multiprocessing.spawn' | wc -l)" -ge "$workers" ]; do
  kill -0 "$peer_pid" 2>/dev/null || fail "the peer exited:" "$work/peer.log"
  [ "$SECONDS" -lt "$deadline" ] || fail "the peer did not answer within 60 s:" "$work/peer.log"
  sleep 0.5
done
sleep 2 # every worker has run its startup (the pool) before the first measured request
peer_workers=($(pgrep -P "$peer_pid" -f 'multiprocessing.spawn'))

# --- a token, the request bodies, and a parity check -----------------------------------------------------
login() {
  curl -sS -f -X POST "$orbas/v1/auth/login" -H 'content-type: application/json' \
    -d "{\"tenant\": \"$tenant_slug\", \"email\": \"$admin_email\", \"password\": \"orbas-demo-password\"}" |
    json_field access_token
}
token="$(login)" || fail "logging in to orbas failed" "$work/demo.log"
user_id="$(cut -d. -f2 <<<"$token" | "$py" -c 'import base64, json, sys
p = sys.stdin.read().strip(); print(json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))["sub"])')"
account_id="$(curl -sS -f "$orbas/v1/accounts?limit=1" -H "authorization: Bearer $token" | json_field items.0.id)"
create_body="{\"kind\": \"call\", \"subject\": \"Benchmark follow-up call\", \"priority\": \"high\", \
\"owner_id\": \"$user_id\", \"account_id\": \"$account_id\", \"due_at\": \"2030-01-15T09:30:00Z\"}"

parity="$(BENCH_TOKEN="$token" BENCH_BODY="$create_body" "$py" bench/api/parity.py "$orbas" "$peer" \
  "$list_path" "$create_path")"
grep -v '^CREATED' <<<"$parity" | sed 's/^/bench-api: /' >&2
read -r _ orbas_task peer_task < <(grep '^CREATED' <<<"$parity")
if [ -n "${orbas_task:-}" ] && [ -n "${peer_task:-}" ]; then
  same="$(pg_super "SELECT count(*) = 2 AND count(DISTINCT changes - 'id') = 1 AND bool_and(request_id IS NOT NULL)
    FROM audit_logs WHERE resource = 'tasks' AND action = 'create' AND resource_id IN ('$orbas_task', '$peer_task')")"
  [ "$same" = t ] && log "parity audit rows: identical changes (id aside), request ids recorded" ||
    log "parity audit rows: DIFFERENT (see audit_logs rows of tasks $orbas_task and $peer_task)"
fi

# --- the runs -------------------------------------------------------------------------------------------
rss_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
reset_peak() { for pid in "$@"; do echo 5 >"/proc/$pid/clear_refs" 2>/dev/null || true; done; }
rows=()
checks=()
failed=0

measure() { # service base endpoint method path body
  local svc="$1" base="$2" endpoint="$3" method="$4" path="$5" body="$6" out="$work/$1-$3.wrk" status
  local token before after
  token="$(login)" || fail "logging in to orbas failed" "$work/demo.log"
  local send=()
  [ -n "$body" ] && send=(-H 'content-type: application/json' --data "$body")
  status="$(curl -s -o "$work/$svc-$endpoint.first" -w '%{http_code}' -X "$method" "$base$path" \
    -H "authorization: Bearer $token" "${send[@]}")"
  if [[ "$status" != 2?? ]]; then
    log "$svc $method $path answered HTTP $status before the run; not measured: $(head -c 300 "$work/$svc-$endpoint.first")"
    rows+=("| $svc | \`$method $path\` | not run: HTTP $status | | | | |")
    failed=1
    return
  fi
  local wrk_args=(-t "$threads" -c "$connections" --timeout 10s -s bench/api/wrk.lua "$base$path")
  log "$svc $method $path: ${warmup}s warm-up, ${duration}s measured"
  BENCH_METHOD="$method" BENCH_TOKEN="$token" BENCH_BODY="$body" wrk -d "${warmup}s" "${wrk_args[@]}" >/dev/null
  sleep 2 # requests in flight when the warm-up stopped finish before anything is counted
  [ "$method" = POST ] && before="$(pg_super "SELECT (SELECT count(*) FROM tasks) || ' ' || (SELECT count(*)
    FROM audit_logs WHERE resource = 'tasks' AND action = 'create')")"
  BENCH_METHOD="$method" BENCH_TOKEN="$token" BENCH_BODY="$body" wrk -d "${duration}s" "${wrk_args[@]}" >"$out"
  local line kv socket_errors ok
  local -A r=() # requests, duration_us, p50_us, p99_us, http_errors, connect, read, write, timeout
  line="$(grep '^BENCH ' "$out")" || fail "no summary from wrk:" "$out"
  for kv in ${line#BENCH }; do r[${kv%%=*}]="${kv#*=}"; done
  socket_errors=$((r[connect] + r[read] + r[write] + r[timeout]))
  ok=$((r[requests] - r[http_errors]))
  [ $((r[http_errors] + socket_errors)) -eq 0 ] || failed=1
  rows+=("$(awk -v s="$svc" -v e="\`$method $path\`" -v n="${r[requests]}" -v d="${r[duration_us]}" \
    -v p50="${r[p50_us]}" -v p99="${r[p99_us]}" -v he="${r[http_errors]}" -v se="$socket_errors" 'BEGIN {
      printf "| %s | %s | %d | %.0f | %.2f | %.2f | %d |", s, e, n, n / (d / 1e6), p50 / 1000, p99 / 1000, he + se }')")
  if [ "$method" = POST ]; then
    after="$(pg_super "SELECT (SELECT count(*) FROM tasks) || ' ' || (SELECT count(*)
      FROM audit_logs WHERE resource = 'tasks' AND action = 'create')")"
    local tasks=$((${after% *} - ${before% *})) audits=$((${after#* } - ${before#* }))
    checks+=("$svc POST: $ok responses 2xx; $tasks task rows and $audits audit rows written (the rows may exceed the responses by up to $connections: requests in flight when wrk stops still complete)")
    if [ "$tasks" -lt "$ok" ] || [ "$tasks" -ne "$audits" ]; then failed=1; fi
  fi
}

reset_peak "$demo_pid" "$peer_pid" "${peer_workers[@]}"
for endpoint in list create; do
  for svc in orbas peer; do
    base="$orbas"
    [ "$svc" = peer ] && base="$peer"
    if [ "$endpoint" = list ]; then
      measure "$svc" "$base" list GET "$list_path" ""
    else
      measure "$svc" "$base" create POST "$create_path" "$create_body"
    fi
  done
done
orbas_rss="$(rss_kib "$demo_pid")"
peer_rss=0
for pid in "${peer_workers[@]}"; do peer_rss=$((peer_rss + $(rss_kib "$pid"))); done
peer_master_rss="$(rss_kib "$peer_pid")"

echo
echo "API benchmark: $connections connections, $threads wrk threads, ${duration}s measured after ${warmup}s warm-up"
echo "per row; $(nproc) CPUs; orbas $("$ORBAS_BIN" --version | awk '{print $2}') (release); peer: uvicorn $workers workers,"
echo "$loop + $http, $pool_size asyncpg connections per worker; demo data: $tenants tenants, scale $scale."
echo
echo "| service | endpoint | requests | req/s | p50 ms | p99 ms | errors |"
echo "|---|---|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "errors: responses with HTTP status >= 400 plus socket errors (connect, read, write, timeout)."
printf '%s\n' "${checks[@]}"
echo
echo "| server | peak RSS during the runs |"
echo "|---|---:|"
echo "| orbas (\`orbas demo\` process; Postgres not counted) | $((orbas_rss / 1024)) MiB |"
echo "| peer ($workers uvicorn workers; supervisor $((peer_master_rss / 1024)) MiB not included) | $((peer_rss / 1024)) MiB |"
[ "$failed" -eq 0 ] || { log "some rows were not run or saw errors (see above)"; exit 1; }
