-- wrk script for bench/webhooks.py: each request unsubscribes a reader nobody has
-- unsubscribed yet (ids first..first+span-1, split between wrk's threads).
-- Arguments after "--": first id, span, API token.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  local first, span = tonumber(args[1]), tonumber(args[2])
  token = args[3]
  -- wrk has 2 threads: each takes half of the span.
  next_id = first + (tid - 1) * math.floor(span / 2)
end

function request()
  local id = next_id
  next_id = next_id + 1
  return wrk.format("POST", "/api/v1/subscribers/" .. id .. "/unsubscribe",
                    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"},
                    "{}")
end
