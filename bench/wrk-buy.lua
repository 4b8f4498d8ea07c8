-- wrk: POST buys, every request a distinct buyer (thread id + counter in X-User-Id). Counts the
-- answers by status and prints them at the end ("statuses: 202=… 409=… 5xx=… other=…").
local counter, tid = 0, 0
local threads = {}
s202, s409, s5xx, sother = 0, 0, 0, 0
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
function response(status, headers, body)
  if status == 202 then s202 = s202 + 1
  elseif status == 409 then s409 = s409 + 1
  elseif status >= 500 then s5xx = s5xx + 1
  else sother = sother + 1 end
end
function done(summary, latency, requests)
  local t = { s202 = 0, s409 = 0, s5xx = 0, sother = 0 }
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (tonumber(th:get(k)) or 0) end
  end
  io.write(string.format("statuses: 202=%d 409=%d 5xx=%d other=%d socket_errors=%d\n",
    t.s202, t.s409, t.s5xx, t.sother,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
