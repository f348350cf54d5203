-- throttle: in-flight leases (throttle/src/backend/redis/inflight.rs; tested by
-- tests/tests/operating/inflight.rs). One sorted set per client and limit: lease id -> expiry
-- in ms since the epoch. Every call is atomic.
--
-- KEYS[1]  the set
-- ARGV[1]  mode: "acquire", "renew" or "count"
-- ARGV[2]  now in ms since the epoch, or "" for Redis server time
-- acquire: ARGV[3] max, ARGV[4] lease id, ARGV[5] ttl ms, ARGV[6] extra ms to keep the set
--          -> {admitted (0/1), leases held afterwards}
-- renew:   ARGV[3] lease id, ARGV[4] ttl ms, ARGV[5] extra ms to keep the set
--          -> 1 renewed, 0 gone (expired or released)
-- count:   -> live leases

local key = KEYS[1]
local mode = ARGV[1]
local now = tonumber(ARGV[2])
if not now then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The set lives at least `ms` more: as long as its newest lease, never shortening the
-- longer lease of an instance configured otherwise.
local function keep(ms)
  if redis.call('PTTL', key) < ms then
    redis.call('PEXPIRE', key, ms)
  end
end

if mode == 'acquire' then
  local max, lease, ttl, extra = tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
  -- Leases of requests that never released (their process died) are gone at expiry.
  redis.call('ZREMRANGEBYSCORE', key, '-inf', string.format('%.0f', now))
  local held = redis.call('ZCARD', key)
  if held >= max then
    return {0, held}
  end
  redis.call('ZADD', key, string.format('%.0f', now + ttl), lease)
  keep(ttl + extra)
  return {1, held + 1}
elseif mode == 'renew' then
  local lease, ttl, extra = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
  local expiry = tonumber(redis.call('ZSCORE', key, lease))
  if not expiry or expiry <= now then
    -- Expired: its unit may have been handed out already, so it is not revived.
    redis.call('ZREM', key, lease)
    return 0
  end
  redis.call('ZADD', key, string.format('%.0f', now + ttl), lease)
  keep(ttl + extra)
  return 1
elseif mode == 'count' then
  return redis.call('ZCOUNT', key, '(' .. string.format('%.0f', now), '+inf')
end
return redis.error_reply('throttle in-flight script: unknown mode ' .. tostring(mode))
