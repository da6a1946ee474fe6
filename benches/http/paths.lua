-- wrk script: cycles through request paths read from a file, one per line.
--   wrk ... -s paths.lua https://HOST:PORT -- PATHS_FILE
-- Each thread starts at its own offset. done() prints one machine-readable
-- line (BENCH ...) that run.sh parses; latencies are in microseconds.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local file = args[1]
  if file == nil then
    error("usage: wrk ... -s paths.lua URL -- PATHS_FILE")
  end
  paths = {}
  for line in io.lines(file) do
    if line ~= "" then
      paths[#paths + 1] = line
    end
  end
  if #paths == 0 then
    error("no paths in " .. file)
  end
  -- spread the threads over the list
  i = ((id or 0) * 7919) % #paths
end

function request()
  i = i + 1
  if i > #paths then
    i = 1
  end
  return wrk.format("GET", paths[i])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f "
      .. "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout))
end
