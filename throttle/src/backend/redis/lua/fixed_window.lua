
-- fixed_window: fields 1, window_start_ms, count (epoch-aligned windows).
local function decide(state, now, limit, period, cost, params)
  local start = now - (now % period)
  local reset = start + period - now
  local count = 0
  if state and #state == 3 and state[1] == 1 and state[2] == start then count = state[3] end
  local remaining = limit - count
  if remaining < 0 then remaining = 0 end
  if cost > limit then return 0, remaining, NEVER, reset end
  if count + cost > limit then return 0, remaining, reset, reset end
  return 1, limit - count - cost, 0, reset, {1, start, count + cost}, start + period
end
