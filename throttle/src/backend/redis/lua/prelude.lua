-- throttle: one atomic decision per call. Shared prelude of every script, which
-- throttle/src/backend/redis/scripts.rs assembles from these files.
--
-- Strategy scripts (prelude, [bucket], strategy, main):
-- KEYS[1]  the state key
-- KEYS[2]  the entries key beside it (the sliding log and the queue only)
-- ARGV[1]  now in ms since the epoch, or "" for Redis server time
-- ARGV[2]  limit   ARGV[3] period_ms   ARGV[4] cost
-- ARGV[5]  extra ms to keep a key past its expiry (0 on server time)
-- ARGV[6..] strategy parameters
-- Reply: {allowed (0/1), remaining, wait_ms (-1: never), reset_ms}
--
-- State is stored as integers joined by ",": the strategy codec's text, except for
-- the sliding log and the queue, whose state key holds a fixed-size header and whose
-- entries live in a sorted set beside it (see their files). Anything unreadable is
-- treated as a fresh state. All arithmetic is on integers below 2^53, where doubles
-- are exact (the backend checks the bound before choosing a script).

local NEVER = -1
-- MAX_EXACT (2^53) comes before this file, from the Rust bound (scripts.rs).

local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- One field of stored text: a whole, non-negative number below 2^53 (what the
-- codec of every built-in strategy accepts), or nil.
local function read_field(part)
  if string.find(part, '[xXnN]') then return nil end -- hex, nan, inf
  local n = tonumber(part)
  if n == nil or n ~= n or n < 0 or n >= MAX_EXACT or n % 1 ~= 0 then return nil end
  return n
end

-- The stored fields, or nil when absent or unreadable: anything but whole numbers
-- below 2^53 in decimal digits joined by ",", which is all any writer stores (one
-- pattern for the whole text: a pattern per field would cost more than the rest of
-- a rejection).
local function read_state(key)
  local raw = redis.call('GET', key)
  if not raw or string.find(raw, '[^%d,]') then return nil end
  local fields = {}
  local start = 1
  while true do
    local stop = string.find(raw, ',', start, true)
    local n = tonumber(string.sub(raw, start, (stop or 0) - 1))
    if n == nil or n >= MAX_EXACT then return nil end
    fields[#fields + 1] = n
    if not stop then return fields end
    start = stop + 1
  end
end

-- Stores fields until `expires_at` (plus `grace`). On server time the expiry is the
-- absolute moment; on a caller's clock, the same duration on Redis's clock. `apply`,
-- when given, writes the entries key `entries`, which then expires with the state.
-- Every number here is a whole number below 2^53, so '%d' (a C long) writes it
-- exactly, and faster than '%.0f'.
local function write_state(key, fields, expires_at, now, server_time, grace, entries, apply)
  local ttl = expires_at - now + grace
  if ttl <= 0 then
    redis.call('DEL', key)
    if apply then redis.call('DEL', entries) end
    return
  end
  local parts = {}
  for i = 1, #fields do parts[i] = string.format('%d', fields[i]) end
  local text = table.concat(parts, ',')
  if server_time then
    local at = string.format('%d', expires_at)
    redis.call('SET', key, text, 'PXAT', at)
    if apply then
      apply()
      redis.call('PEXPIREAT', entries, at)
    end
  else
    local ms = string.format('%d', ttl)
    redis.call('SET', key, text, 'PX', ms)
    if apply then
      apply()
      redis.call('PEXPIRE', entries, ms)
    end
  end
end

-- Integer division rounding down / up, exact for operands below 2^53.
local function idiv(a, b) return math.floor(a / b) end
local function cdiv(a, b) return -math.floor(-a / b) end
