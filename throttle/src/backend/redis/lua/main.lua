
-- Dispatch (appended after the strategy's `decide(state, now, limit, period, cost, params)`,
-- which returns allowed (0/1), remaining, wait_ms, reset_ms, new_state, expires_at).
local key = KEYS[1]
local now = server_now()
if ARGV[2] ~= '' then now = tonumber(ARGV[2]) end
if ARGV[1] == 'read' then
  return {string.format('%.0f', now), redis.call('GET', key) or ''}
end
local params = {}
for i = 6, #ARGV do params[#params + 1] = tonumber(ARGV[i]) end
local allowed, remaining, wait, reset, state, expires_at =
  decide(read_state(key), now, tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), params)
if allowed == 1 then write_state(key, state, expires_at) end
return {allowed, remaining, wait, reset}
