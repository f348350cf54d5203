
-- Dispatch (appended after the strategy's `decide(state, now, limit, period, cost, params)`,
-- which returns allowed (0/1), remaining, wait_ms, reset_ms and, when allowed,
-- new_state and expires_at).
local key = KEYS[1]
local server_time = ARGV[1] == ''
local now
if server_time then now = server_now() else now = tonumber(ARGV[1]) end
local params = {}
for i = 6, #ARGV do params[#params + 1] = tonumber(ARGV[i]) end
local allowed, remaining, wait, reset, state, expires_at =
  decide(read_state(key), now, tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), params)
if allowed == 1 then write_state(key, state, expires_at, now, server_time, tonumber(ARGV[5])) end
return {allowed, remaining, wait, reset}
