-- wrk script for tickmon serve: `-- post` sends heartbeats (each connection's thread spreads
-- them over 8 agents, with a sequence number in the metadata), `-- get` reads GET /health.
-- done() prints one JSON line: requests, non-2xx answers, socket errors, duration, latency.
local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   mode = args[1] or "post"
   counter = 0
end

function request()
   if mode == "get" then
      return wrk.format("GET", "/health")
   end
   counter = counter + 1
   local agent = "agent-" .. id .. "-" .. (counter % 8)
   return wrk.format("POST", "/heartbeat/" .. agent, { ["Content-Type"] = "application/json" },
      '{"metadata":{"seq":' .. counter .. '}}')
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      '{"requests":%d,"non2xx":%d,"socket_errors":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d}\n',
      summary.requests, e.status, e.connect + e.read + e.write + e.timeout, summary.duration,
      latency:percentile(50), latency:percentile(99)))
end
