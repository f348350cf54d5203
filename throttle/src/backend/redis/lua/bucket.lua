-- Lua twin of throttle/src/strategy/bucket.rs (the meter of the token and leaky
-- buckets and GCRA); tests/tests/redis_differential.rs checks that both decide alike.
-- The meter shared by the token and leaky buckets: a level in units of 1 / period of
-- a hit (a hit of cost c adds c * period units) that drains `limit` units per ms.

-- The level stored as `level` at `last` read at `now`: level, now_eff, shift.
local function bucket_read(last, level, now, limit)
  local now_eff = now
  if last > now then now_eff = last end
  local elapsed = now_eff - last
  if elapsed >= cdiv(level, limit) then level = 0 else level = level - elapsed * limit end
  return level, now_eff, now_eff - now
end

local function bucket_remaining(level, admit, period, limit)
  local r = admit - level
  if r < 0 then r = 0 end
  r = idiv(r, period)
  if r > limit then r = limit end
  return r
end

-- allowed, remaining, wait, reset and, when allowed, the new last_ms and level.
local function bucket_decide(last, level, now, limit, period, cost, admit)
  local current, now_eff, shift = bucket_read(last, level, now, limit)
  local cost_units = cost * period
  if cost_units > admit then
    return 0, bucket_remaining(current, admit, period, limit), NEVER, shift + cdiv(current, limit)
  end
  local after = current + cost_units
  if after > admit then
    return 0, bucket_remaining(current, admit, period, limit), shift + cdiv(after - admit, limit),
      shift + cdiv(current, limit)
  end
  return 1, bucket_remaining(after, admit, period, limit), 0, shift + cdiv(after, limit), now_eff, after
end

-- A meter stored as {tag, last_ms, level}, admitting while the level stays within `admit`.
local function meter_decide(tag, state, now, limit, period, cost, admit)
  local last, level = 0, 0
  if state and #state == 3 and state[1] == tag then last, level = state[2], state[3] end
  local allowed, remaining, wait, reset, new_last, new_level = bucket_decide(last, level, now, limit, period, cost, admit)
  if allowed == 0 then return 0, remaining, wait, reset end
  return 1, remaining, 0, reset, {tag, new_last, new_level}, new_last + cdiv(new_level, limit)
end
