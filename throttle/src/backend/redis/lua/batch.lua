-- Batched decisions: throttle/src/backend/redis/batch.rs builds the call (DECIDE[tag] and
-- HAS_ENTRIES come from scripts.rs); tests/tests/redis_batching.rs checks the answers are
-- those of the same hits one by one.
--
-- Independent hits of concurrent callers, decided one after another in one call
-- (appended after DECIDE[tag] for every built-in strategy). Each is admitted or
-- rejected on its own, and an admitted hit is written before the next is decided, so
-- the answers are those of the same hits sent one by one in this order.
-- KEYS     per hit: its state key, then its entries key when its tag has one
-- ARGV[1]  now in ms, or "" for Redis server time   ARGV[2] grace_ms
-- ARGV[3]  the number of hits   ARGV[4] the number of plans (distinct strategy and rate)
-- then per plan: tag, limit, period_ms, parameter ("" for none)
-- then per hit: its plan (1-based), cost
-- Reply: 4 elements per hit, {allowed, remaining, wait, reset}, or, for a hit whose
-- decision raised an error (a key of another type, say), its message and three zeros:
-- one hit's error leaves the others decided.
local server_time = ARGV[1] == ''
local now
if server_time then now = server_now() else now = tonumber(ARGV[1]) end
local grace = tonumber(ARGV[2])

local function decide_one(tag, key, entries, limit, period, cost, params)
  local allowed, remaining, wait, reset, state, expires_at, apply =
    DECIDE[tag](read_state(key), now, limit, period, cost, params, entries)
  if allowed == 1 then
    write_state(key, state, expires_at, now, server_time, grace, entries, apply)
  end
  return allowed, remaining, wait, reset
end

local plans = {}
local plan_count = tonumber(ARGV[4])
for p = 1, plan_count do
  local at = 5 + (p - 1) * 4
  local params = {}
  if ARGV[at + 3] ~= '' then params[1] = tonumber(ARGV[at + 3]) end
  plans[p] = { tag = tonumber(ARGV[at]), limit = tonumber(ARGV[at + 1]), period = tonumber(ARGV[at + 2]),
    params = params }
end

local hits_at = 5 + plan_count * 4
local replies = {}
local k = 1
for i = 1, tonumber(ARGV[3]) do
  local at = hits_at + (i - 1) * 2
  local plan = plans[tonumber(ARGV[at])]
  local key, entries = KEYS[k], nil
  k = k + 1
  if HAS_ENTRIES[plan.tag] then
    entries = KEYS[k]
    k = k + 1
  end
  local ok, allowed, remaining, wait, reset = pcall(decide_one, plan.tag, key, entries, plan.limit, plan.period,
    tonumber(ARGV[at + 1]), plan.params)
  local base = 4 * (i - 1)
  if ok then
    replies[base + 1], replies[base + 2], replies[base + 3], replies[base + 4] = allowed, remaining, wait, reset
  else
    local message = allowed
    if type(message) == 'table' then message = message.err or 'error' end
    replies[base + 1], replies[base + 2], replies[base + 3], replies[base + 4] = tostring(message), 0, 0, 0
  end
end
return replies
