-- Lua twin of throttle/src/strategy/token_bucket.rs, step for step;
-- tests/tests/redis_differential.rs checks that both decide alike. TAG (and
-- HEADER_TAG) come from the codec's tag table (strategy/codec.rs, `tags`).
-- token_bucket: fields TAG, last_ms, missing (tokens missing x period). ARGV[6]: the burst.
local function decide(state, now, limit, period, cost, params)
  return meter_decide(TAG, state, now, limit, period, cost, params[1] * period)
end
