-- Lua twin of throttle/src/strategy/fixed_window.rs, step for step;
-- tests/tests/redis_differential.rs checks that both decide alike. TAG (and
-- HEADER_TAG) come from the codec's tag table (strategy/codec.rs, `tags`).
-- fixed_window: fields TAG, window_start_ms, count (epoch-aligned windows).
local function decide(state, now, limit, period, cost, params)
  local start = now - (now % period)
  local reset = start + period - now
  local count = 0
  if state and #state == 3 and state[1] == TAG and state[2] == start then count = state[3] end
  local remaining = limit - count
  if remaining < 0 then remaining = 0 end
  if cost > limit then return 0, remaining, NEVER, reset end
  if count + cost > limit then return 0, remaining, reset, reset end
  return 1, limit - count - cost, 0, reset, {TAG, start, count + cost}, start + period
end
