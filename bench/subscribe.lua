-- wrk script for bench/subscribe.py: a new address in every JSON subscribe request.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  prefix = string.format("b%d-%d-%d", os.time(), tid, math.random(1, 1000000000))
  counter = 0
end

function request()
  counter = counter + 1
  local body = string.format('{"email": "%s-%d@example.org", "name": "Bench Reader"}',
                             prefix, counter)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
