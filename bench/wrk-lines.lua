-- wrk: one request per line of LINES ("buyer value"), each thread its own slice, wrapping round:
--   MODE=poll   GET PATH_PREFIX/<value> as buyer        (a waiting room's polls: value = ticket)
--   MODE=token  POST PATH as buyer with Admission-Token (buys with a token: value = the token)
--   MODE=plain  POST PATH as buyer                      (the same buys without a waiting room)
-- OFFSET (0) skips that many lines first (another run's buyers). Counts the answers by status ("statuses: 200=… 202=… 4xx=… 5xx=…").
local lines, threads = {}, {}
local i, tid, nthreads = 0, 0, 2
s2xx, s4xx, s5xx = 0, 0, 0
local mode, prefix = os.getenv("MODE") or "poll", os.getenv("PATH_PREFIX") or ""
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  tid = tonumber(wrk.thread:get("tid")) or 1
  for l in io.lines(os.getenv("LINES")) do
    local who, value = l:match("^(%S+) (%S+)$")
    if who then table.insert(lines, { who, value }) end
  end
  nthreads = 2
  i = (tonumber(os.getenv("OFFSET") or "0") or 0) + tid - 1
end
function request()
  local l = lines[(i % #lines) + 1]
  i = i + nthreads
  if mode == "poll" then
    return wrk.format("GET", prefix .. l[2], { ["x-user-id"] = l[1] }, nil)
  elseif mode == "token" then
    return wrk.format("POST", prefix, { ["x-user-id"] = l[1], ["admission-token"] = l[2] }, nil)
  end
  return wrk.format("POST", prefix, { ["x-user-id"] = l[1] }, nil)
end
function response(status, headers, body)
  if status < 300 then s2xx = s2xx + 1
  elseif status >= 500 then s5xx = s5xx + 1
  else s4xx = s4xx + 1 end
end
function done(summary, latency, requests)
  local t = { s2xx = 0, s4xx = 0, s5xx = 0 }
  for _, th in ipairs(threads) do
    for k, _ in pairs(t) do t[k] = t[k] + (tonumber(th:get(k)) or 0) end
  end
  io.write(string.format("statuses: 2xx=%d 4xx=%d 5xx=%d socket_errors=%d\n", t.s2xx, t.s4xx, t.s5xx,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
