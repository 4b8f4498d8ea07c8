-- wrk: POST buys, every request a distinct buyer (thread id + counter in X-User-Id).
local counter, tid = 0, 0
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 0
end
function request()
  counter = counter + 1
  return wrk.format("POST", nil, { ["x-user-id"] = "wrk-" .. tid .. "-" .. counter }, nil)
end
