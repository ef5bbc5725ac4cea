-- wrk reporting script for bench/bench_web.py (make bench-web).
--
-- done() prints one machine-readable line after wrk's own report:
--   WRK_REPORT requests=<n> duration_us=<n> bytes=<n> connect=<n> read=<n> write=<n> status=<n>
--     timeout=<n> mean_us=<n> max_us=<n> p50_us=<n> p90_us=<n> p95_us=<n> p99_us=<n>
-- (wrk's "status" error count is responses with a status above 399; 3xx are caught by bench_web.py from
-- the bytes per response).
--
-- With WRK_CAPTURE=1 it also records, per thread, the first response whose status is not 200 and prints it
-- as WRK_FIRST_BAD lines. That needs wrk to hand every response to Lua, which costs load-generator CPU, so
-- bench_web.py sets it only for a short diagnostic re-run after a measured run looked wrong.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

-- With WRK_DISTINCT_VISITORS=1 every request comes from a new client address (X-Forwarded-For): views are
-- counted once per visitor per window, and the counted-views scenario must see every request counted.
if os.getenv("WRK_DISTINCT_VISITORS") == "1" then
  local sent = 0

  function request()
    sent = sent + 1
    local n = (thread_number or 0) * 4000000 + sent
    wrk.headers["X-Forwarded-For"] = string.format(
      "10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256
    )
    return wrk.format()
  end
end

if os.getenv("WRK_CAPTURE") == "1" then
  bad_count = 0
  first_bad = nil

  function response(status, headers, body)
    if status ~= 200 then
      bad_count = bad_count + 1
      if first_bad == nil then
        local lines = { "HTTP " .. status }
        for name, value in pairs(headers) do
          table.insert(lines, name .. ": " .. value)
        end
        table.insert(lines, "")
        table.insert(lines, string.sub(body or "", 1, 2000))
        first_bad = table.concat(lines, "\n")
      end
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_REPORT requests=%.0f duration_us=%.0f bytes=%.0f connect=%.0f read=%.0f write=%.0f status=%.0f "
      .. "timeout=%.0f mean_us=%.0f max_us=%.0f p50_us=%.0f p90_us=%.0f p95_us=%.0f p99_us=%.0f\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99)
  ))
  for i, thread in ipairs(threads) do
    local n = thread:get("bad_count")
    if n ~= nil and n > 0 then
      io.write(string.format("WRK_BAD_COUNT thread=%d count=%d\n", i, n))
      local first = thread:get("first_bad")
      if first ~= nil then
        io.write("WRK_FIRST_BAD_BEGIN\n" .. first .. "\nWRK_FIRST_BAD_END\n")
      end
    end
  end
end
