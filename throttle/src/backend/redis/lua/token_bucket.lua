
-- token_bucket: fields 4, last_ms, missing (tokens missing x period). ARGV[6]: the burst.
local function decide(state, now, limit, period, cost, params)
  return meter_decide(4, state, now, limit, period, cost, params[1] * period)
end
