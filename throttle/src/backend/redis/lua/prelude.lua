-- throttle: one atomic decision per call. Shared prelude of every strategy script.
--
-- KEYS[1]  the state key
-- ARGV[1]  "hit" (decide and store) or "read" (return the stored state, change nothing)
-- ARGV[2]  now in ms since the epoch, or "" for Redis server time
-- ARGV[3]  limit   ARGV[4] period_ms   ARGV[5] cost   ARGV[6..] strategy parameters
--
-- State is stored as the strategy codec's text: integers joined by ",". Anything
-- unreadable is treated as a fresh state. All arithmetic is on integers below 2^53.

local function server_now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function read_state(key)
  local raw = redis.call('GET', key)
  if not raw then return nil end
  local fields = {}
  for part in string.gmatch(raw, '([^,]+)') do
    local n = tonumber(part)
    if n == nil or n ~= n or n % 1 ~= 0 then return nil end
    fields[#fields + 1] = n
  end
  return fields
end

local function write_state(key, fields, expires_at)
  local parts = {}
  for i = 1, #fields do parts[i] = string.format('%.0f', fields[i]) end
  redis.call('SET', key, table.concat(parts, ','), 'PXAT', string.format('%.0f', expires_at))
end

-- Integer division rounding down / up, exact for operands below 2^53.
local function idiv(a, b) return math.floor(a / b) end
local function cdiv(a, b) return -math.floor(-a / b) end
