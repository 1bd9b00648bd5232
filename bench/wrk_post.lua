-- wrk script: POST pre-signed Stripe events read from a file (bench/events.py), each
-- event at most once across all threads, then print a JSON summary line.
-- usage: wrk -s bench/wrk_post.lua URL -- EVENTS_FILE THREADS

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  reqs, n, pos, wrapped, non200 = {}, 0, 0, 0, 0
  local i = 0
  for line in io.lines(path) do
    -- Thread k takes lines k, k+T, k+2T...: no event is sent by two threads.
    if i % nthreads == id then
      local tab = line:find("\t", 1, true)
      n = n + 1
      reqs[n] = wrk.format("POST", "/webhooks/stripe", {
        ["Content-Type"] = "application/json",
        ["Stripe-Signature"] = line:sub(1, tab - 1),
      }, line:sub(tab + 1))
    end
    i = i + 1
  end
end

function request()
  pos = pos + 1
  if pos > n then
    -- Out of unique events: repeats are duplicates; the runner counts stored rows.
    pos, wrapped = 1, wrapped + 1
  end
  return reqs[pos]
end

function response(status, headers, body)
  if status ~= 200 then non200 = non200 + 1 end
end

function done(summary, latency, requests)
  local wraps, bad = 0, 0
  for _, t in ipairs(threads) do
    wraps = wraps + t:get("wrapped")
    bad = bad + t:get("non200")
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "non200": %d, "wrapped": %d, ' ..
    '"connect_errors": %d, "read_errors": %d, "write_errors": %d, "timeouts": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, bad, wraps,
    summary.errors.connect, summary.errors.read, summary.errors.write, summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
