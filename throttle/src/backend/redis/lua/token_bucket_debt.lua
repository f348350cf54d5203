-- Lua twin of throttle/src/strategy/token_bucket_debt.rs, step for step;
-- tests/tests/redis_differential.rs checks that both decide alike. TAG (and
-- HEADER_TAG) come from the codec's tag table (strategy/codec.rs, `tags`).
-- token_bucket_debt: fields TAG, last_ms, missing. ARGV[6]: burst + max_debt.
local function decide(state, now, limit, period, cost, params)
  return meter_decide(TAG, state, now, limit, period, cost, params[1] * period)
end
