
-- leaky_bucket: fields 6, last_ms, level (level x period); the bucket holds the limit.
local function decide(state, now, limit, period, cost, params)
  return meter_decide(6, state, now, limit, period, cost, limit * period)
end
