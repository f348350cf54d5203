-- Lua twin of throttle/src/strategy/sliding_window_counter.rs, step for step;
-- tests/tests/redis_differential.rs checks that both decide alike. TAG (and
-- HEADER_TAG) come from the codec's tag table (strategy/codec.rs, `tags`).
-- sliding_window_counter: fields TAG, window_start_ms, current, previous. The previous
-- window weighs (period - elapsed) / period; everything is scaled by the period.
local function decide(state, now, limit, period, cost, params)
  local start = now - (now % period)
  local s_start, s_current, s_previous = 0, 0, 0
  if state and #state == 4 and state[1] == TAG then s_start, s_current, s_previous = state[2], state[3], state[4] end
  local previous, current = 0, 0
  if s_start == start then
    previous, current = s_previous, s_current
  elseif s_start + period == start then
    previous, current = s_current, 0
  elseif s_start > start then
    -- A clock behind the state: keep its counts rather than forget them.
    previous, current = s_previous, s_current
  end
  local elapsed = now - start
  local left = period - elapsed
  local capacity = limit * period
  local function weighted(c) return previous * left + c * period end
  local function remaining(c)
    local r = capacity - weighted(c)
    if r < 0 then r = 0 end
    return idiv(r, period)
  end
  local function reset(c)
    if c > 0 then return left + period elseif previous > 0 then return left else return 0 end
  end
  if cost > limit then return 0, remaining(current), NEVER, reset(current) end
  local wait = 0
  if weighted(current) + cost * period <= capacity then
    wait = 0
  elseif current + cost <= limit then
    -- Fits once the previous window's weight has fallen far enough.
    wait = left - idiv((limit - current - cost) * period, previous)
  else
    -- Not before the next window, where the current count becomes the previous one.
    wait = left + period - idiv((limit - cost) * period, current)
  end
  if wait > 0 then return 0, remaining(current), wait, reset(current) end
  current = current + cost
  return 1, remaining(current), 0, reset(current), {TAG, start, current, previous}, start + 2 * period
end
