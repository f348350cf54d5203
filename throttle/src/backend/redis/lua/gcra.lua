-- Lua twin of throttle/src/strategy/gcra.rs, step for step;
-- tests/tests/redis_differential.rs checks that both decide alike. TAG (and
-- HEADER_TAG) come from the codec's tag table (strategy/codec.rs, `tags`).
-- gcra: fields TAG, tat_ms, tat_rem (TAT = tat_ms + tat_rem / limit). Times in units of
-- 1 / limit ms; the emission interval is `period` units. ARGV[6]: the burst.
local function decide(state, now, limit, period, cost, params)
  local tat_ms, tat_rem = 0, 0
  if state and #state == 3 and state[1] == TAG then tat_ms, tat_rem = state[2], state[3] end
  local tolerance = params[1] * period
  -- GCRA is the bucket meter: its level is how far the TAT runs ahead of now.
  local function remaining(ahead) return bucket_remaining(ahead, tolerance, period, limit) end
  local current = 0
  if tat_ms >= now then current = (tat_ms - now) * limit + math.min(tat_rem, limit - 1) end
  local increment = cost * period
  if increment > tolerance then return 0, remaining(current), NEVER, cdiv(current, limit) end
  local ahead = current + increment
  if ahead > tolerance then
    return 0, remaining(current), cdiv(ahead - tolerance, limit), cdiv(current, limit)
  end
  local new_ms = now + idiv(ahead, limit)
  local new_rem = ahead % limit
  local expires_at = new_ms
  if new_rem > 0 then expires_at = new_ms + 1 end
  return 1, remaining(ahead), 0, cdiv(ahead, limit), {TAG, new_ms, new_rem}, expires_at
end
