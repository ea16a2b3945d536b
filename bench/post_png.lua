-- wrk script: POST one PNG file on every request, and print the run's
-- figures as one JSON line at the end (bench/run.sh reads it).
--   wrk -t2 -c64 -d20s --latency -s bench/post_png.lua URL -- FILE.png [ACCEPT]
local body, accept

function init(args)
  local f = assert(io.open(args[1], "rb"))
  body = f:read("*a")
  f:close()
  accept = args[2] or "application/json"
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "image/png"
  wrk.headers["Accept"] = accept
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "req_s": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"max_ms": %.3f, "errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
