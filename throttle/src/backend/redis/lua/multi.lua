
-- Several hits decided as one (appended after DECIDE[tag] for every built-in strategy).
-- KEYS[i]  the state key of hit i (one client's keys share a hash tag, so one slot)
-- ARGV[1]  now in ms, or "" for Redis server time      ARGV[2]  the number of hits
-- ARGV[3 + 6(i-1) ..]  per hit: tag, limit, period_ms, cost, grace_ms, parameter ("" for none)
-- Either every hit is admitted and every state written, or nothing is written and
-- the replies stop at the first rejection. Reply: one {allowed, remaining, wait, reset} per hit.
local server_time = ARGV[1] == ''
local now
if server_time then now = server_now() else now = tonumber(ARGV[1]) end
local replies, writes = {}, {}
for i = 1, tonumber(ARGV[2]) do
  local at = 3 + (i - 1) * 6
  local params = {}
  if ARGV[at + 5] ~= '' then params[1] = tonumber(ARGV[at + 5]) end
  local allowed, remaining, wait, reset, state, expires_at = DECIDE[tonumber(ARGV[at])](
    read_state(KEYS[i]), now, tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), params)
  replies[i] = {allowed, remaining, wait, reset}
  if allowed ~= 1 then return replies end
  writes[i] = {state, expires_at, tonumber(ARGV[at + 4])}
end
for i = 1, #writes do
  write_state(KEYS[i], writes[i][1], writes[i][2], now, server_time, writes[i][3])
end
return replies
