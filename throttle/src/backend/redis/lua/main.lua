-- Called by throttle/src/backend/redis/decide.rs (`decide_one`); the strategy's twin
-- comes before it, and tests/tests/redis_differential.rs checks its answers.

-- Dispatch (appended after the strategy's
-- `decide(state, now, limit, period, cost, params, entries)`, which returns allowed
-- (0/1), remaining, wait_ms, reset_ms and, when allowed, new_state, expires_at and,
-- for strategies with an entries key, the function that writes it).
local key = KEYS[1]
local server_time = ARGV[1] == ''
local now
if server_time then now = server_now() else now = tonumber(ARGV[1]) end
local params = {}
for i = 6, #ARGV do params[#params + 1] = tonumber(ARGV[i]) end
local allowed, remaining, wait, reset, state, expires_at, apply =
  decide(read_state(key), now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), params, KEYS[2])
if allowed == 1 then
  write_state(key, state, expires_at, now, server_time, tonumber(ARGV[5]), KEYS[2], apply)
end
return {allowed, remaining, wait, reset}
