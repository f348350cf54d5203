-- Lua twin of throttle/src/strategy/leaky_bucket.rs, step for step;
-- tests/tests/redis_differential.rs checks that both decide alike. TAG (and
-- HEADER_TAG) come from the codec's tag table (strategy/codec.rs, `tags`).
-- leaky_bucket: fields TAG, last_ms, level (level x period); the bucket holds the limit.
local function decide(state, now, limit, period, cost, params)
  return meter_decide(TAG, state, now, limit, period, cost, limit * period)
end
