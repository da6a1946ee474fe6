-- wrk script for run.sh: one request per line of a file, cycled.
--   wrk ... -s requests.lua URL -- FILE get         (each line a GET path)
--   wrk ... -s requests.lua URL -- FILE xml [check] (each line an XML body,
--                                                   POST /v1/onlinecheck)
-- Every request is formatted once, in init, so the load generator's cost per
-- request is the same for both kinds. With "check", every answer is also
-- read and counted: 200 with <QualificationValidity>1</…> (good), 200 with
-- 5, 複数該当, duplicate enrolment (multiple), anything else (bad); slower:
-- for warm-ups.
-- done() prints one line (BENCH ...) that run.sh parses; latencies in µs.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  local file, kind, check = args[1], args[2], args[3]
  if file == nil or (kind ~= "get" and kind ~= "xml") then
    error("usage: wrk ... -s requests.lua URL -- FILE get|xml [check]")
  end
  local headers = {}
  for k, v in pairs(wrk.headers) do
    headers[k] = v
  end
  if kind == "xml" then
    headers["Content-Type"] = "application/xml"
  end
  reqs = {}
  for line in io.lines(file) do
    if line ~= "" then
      local h = {}
      for k, v in pairs(headers) do
        h[k] = v
      end
      if kind == "get" then
        reqs[#reqs + 1] = wrk.format("GET", line, h)
      else
        reqs[#reqs + 1] = wrk.format("POST", "/v1/onlinecheck", h, line)
      end
    end
  end
  if #reqs == 0 then
    error("no requests in " .. file)
  end
  i = ((id or 0) * 7919) % #reqs
  good, multiple, bad = 0, 0, 0
  if check == "check" then
    response = function(status, _, body)
      if status == 200 and kind == "xml"
          and string.find(body, "<QualificationValidity>1</QualificationValidity>", 1, true) then
        good = good + 1
      elseif status == 200 and kind == "xml"
          and string.find(body, "<QualificationValidity>5</QualificationValidity>", 1, true) then
        multiple = multiple + 1
      elseif status == 200 and kind == "get" then
        good = good + 1
      else
        bad = bad + 1
        if bad <= 3 then
          io.stderr:write(string.format("unexpected answer %d: %s\n", status, string.sub(body or "", 1, 400)))
        end
      end
    end
  end
end

function request()
  i = i + 1
  if i > #reqs then
    i = 1
  end
  return reqs[i]
end

function done(summary, latency, requests)
  local e = summary.errors
  local checked_good, checked_multiple, checked_bad = 0, 0, 0
  for _, t in ipairs(threads) do
    checked_good = checked_good + (t:get("good") or 0)
    checked_multiple = checked_multiple + (t:get("multiple") or 0)
    checked_bad = checked_bad + (t:get("bad") or 0)
  end
  io.write(string.format(
    "BENCH requests=%d duration_us=%d rps=%.1f p50_us=%d p90_us=%d p99_us=%d max_us=%d mean_us=%.1f "
      .. "non2xx=%d connect_errors=%d read_errors=%d write_errors=%d timeouts=%d good=%d multiple=%d bad=%d\n",
    summary.requests, summary.duration, summary.requests / (summary.duration / 1e6),
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    e.status, e.connect, e.read, e.write, e.timeout, checked_good, checked_multiple, checked_bad))
end
