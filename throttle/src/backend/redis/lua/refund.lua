
-- Refunds of the strategies with an entries key (appended after REFUND[tag] for
-- each): the refunded cost leaves the entries in the same call that reads them, so
-- concurrent hits and refunds of one key are exact.
-- KEYS[1] the state key   KEYS[2] its entries key
-- ARGV[1] now in ms, or "" for Redis server time   ARGV[2] tag   ARGV[3] limit
-- ARGV[4] period_ms   ARGV[5] cost   ARGV[6] extra ms to keep a key (as for decisions)
-- ARGV[7] the moment the hit was admitted at or after, in ms since the epoch, or ""
-- ARGV[8] with ARGV[7] "": how many ms before now that moment is (on server time)
-- Reply: 1 when something was given back, else 0.
local key = KEYS[1]
local server_time = ARGV[1] == ''
local now
if server_time then now = server_now() else now = tonumber(ARGV[1]) end
local since
if ARGV[7] ~= '' then since = tonumber(ARGV[7]) else since = math.max(now - tonumber(ARGV[8]), 0) end
local given, state, expires_at, apply = REFUND[tonumber(ARGV[2])](read_state(key), now, tonumber(ARGV[3]),
  tonumber(ARGV[4]), tonumber(ARGV[5]), since, KEYS[2])
if given == 1 then
  write_state(key, state, expires_at, now, server_time, tonumber(ARGV[6]), KEYS[2], apply)
end
return given
