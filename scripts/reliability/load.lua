-- wrk script for tickmon serve under load with malformed requests mixed in: of every ten
-- requests, six are heartbeats (spread over 64 agents), one a failure report, and three are
-- hostile: invalid JSON, an agent id with path characters, metadata nested too deep, a body
-- over --max-body, a method the path does not take, or bytes that are not HTTP at all.
-- done() prints one JSON line: requests, non-2xx answers, socket errors.
local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   counter = 0
   big = string.rep("x", 70000)
   deep = string.rep("[", 40) .. "1" .. string.rep("]", 40)
end

local json = { ["Content-Type"] = "application/json" }

function request()
   counter = counter + 1
   local agent = "load-" .. id .. "-" .. (counter % 64)
   local k = counter % 10
   if k < 6 then
      return wrk.format("POST", "/heartbeat/" .. agent, json, '{"metadata":{"seq":' .. counter .. '}}')
   elseif k == 6 then
      return wrk.format("POST", "/heartbeat/" .. agent .. "/fail", json, '{"error":"synthetic"}')
   elseif k == 7 then
      local bad = counter % 4
      if bad == 0 then
         return wrk.format("POST", "/heartbeat/" .. agent, json, '{"metadata": [1,2')
      elseif bad == 1 then
         return wrk.format("POST", "/heartbeat/..%2F..%2Fetc", json, "{}")
      elseif bad == 2 then
         return wrk.format("POST", "/heartbeat/" .. agent, json, '{"metadata":{"d":' .. deep .. '}}')
      else
         return wrk.format("POST", "/heartbeat/" .. agent, json, big)
      end
   elseif k == 8 then
      return wrk.format("PATCH", "/agent/" .. agent)
   else
      -- Not HTTP: the server must drop the connection and keep serving the others.
      return "\x16\x03\x01\x00garbage\r\n\r\n"
   end
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format('{"requests":%d,"non2xx":%d,"socket_errors":%d,"duration_us":%d,"p99_us":%d}\n',
      summary.requests, e.status, e.connect + e.read + e.write + e.timeout, summary.duration,
      latency:percentile(99)))
end
