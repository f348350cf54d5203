
-- token_bucket_debt: fields 5, last_ms, missing. ARGV[6]: burst + max_debt.
local function decide(state, now, limit, period, cost, params)
  return meter_decide(5, state, now, limit, period, cost, params[1] * period)
end
