-- Stacked limits as one call: throttle/src/backend/redis/decide.rs (`decide_all`);
-- tests/tests/redis_backend.rs and tests/tests/hostile/stack.rs check it is all or nothing.
-- Several hits decided as one (appended after DECIDE[tag] for every built-in strategy).
-- KEYS[2i - 1], KEYS[2i]  the state key of hit i and its entries key (one client's
--                         keys share a hash tag, so one slot; no key twice)
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
  local key, entries = KEYS[2 * i - 1], KEYS[2 * i]
  local params = {}
  if ARGV[at + 5] ~= '' then params[1] = tonumber(ARGV[at + 5]) end
  local allowed, remaining, wait, reset, state, expires_at, apply = DECIDE[tonumber(ARGV[at])](
    read_state(key), now, tonumber(ARGV[at + 1]), tonumber(ARGV[at + 2]), tonumber(ARGV[at + 3]), params, entries)
  replies[i] = {allowed, remaining, wait, reset}
  if allowed ~= 1 then return replies end
  writes[i] = {key, state, expires_at, tonumber(ARGV[at + 4]), entries, apply}
end
for _, w in ipairs(writes) do
  write_state(w[1], w[2], w[3], now, server_time, w[4], w[5], w[6])
end
return replies
