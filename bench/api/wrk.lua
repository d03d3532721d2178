-- wrk script of scripts/bench-api.sh: one request shape per run, taken from the environment
-- (BENCH_METHOD, BENCH_TOKEN, BENCH_BODY), and one machine-readable summary line at the end.
-- No per-response Lua hook: that would slow wrk down and measure wrk instead of the servers.
wrk.method = os.getenv("BENCH_METHOD") or "GET"
wrk.headers["Authorization"] = "Bearer " .. (os.getenv("BENCH_TOKEN") or "")
local body = os.getenv("BENCH_BODY")
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end

-- errors.status counts responses with a status of 400 or more (wrk's "Non-2xx or 3xx responses");
-- neither benchmarked endpoint answers 3xx, so with the socket errors it is every failed request.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d http_errors=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.status, e.connect, e.read, e.write, e.timeout))
end
