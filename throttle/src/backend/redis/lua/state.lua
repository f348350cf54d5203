-- Called by throttle/src/backend/redis/compare_and_set.rs (and stat.rs);
-- tests/tests/redis_backend.rs and tests/tests/redis_differential.rs run it.
-- The generic state script: reads for stats, and compare-and-set for strategies
-- decided in Rust (any strategy with a codec but no script of its own).
--
-- KEYS[1] the state key
-- read:  ARGV[1] "read", ARGV[2] now or "" for server time
--        reply {now, stored text or ""}
-- cas:   ARGV[1] "cas", ARGV[2] now or "", ARGV[3] the text the decision read ("" = none),
--        ARGV[4] the new text, ARGV[5] ms to keep it ("" = no expiry, <= 0: delete)
--        reply {1, now, ""} when written, else {0, now, stored text or ""} to decide again
local key = KEYS[1]
local now
if ARGV[2] == '' then now = server_now() else now = tonumber(ARGV[2]) end
local current = redis.call('GET', key) or ''
if ARGV[1] == 'read' then
  return {string.format('%.0f', now), current}
end
if current ~= ARGV[3] then
  return {0, string.format('%.0f', now), current}
end
if ARGV[5] == '' then
  redis.call('SET', key, ARGV[4])
elseif tonumber(ARGV[5]) <= 0 then
  redis.call('DEL', key)
else
  redis.call('SET', key, ARGV[4], 'PX', ARGV[5])
end
return {1, string.format('%.0f', now), ''}
