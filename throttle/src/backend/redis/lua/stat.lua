-- Called by throttle/src/backend/redis/stat.rs; tests/tests/redis_differential.rs checks the stats match Rust's.
-- Stats of the strategies with an entries key (appended after STAT[tag] for each),
-- read without changing anything.
-- KEYS[1] the state key   KEYS[2] its entries key
-- ARGV[1] now in ms, or "" for Redis server time   ARGV[2] tag   ARGV[3] limit   ARGV[4] period_ms
-- Reply: {remaining, wait_ms, reset_ms, the strategy's four metadata integers, the queue's level}
local now
if ARGV[1] == '' then now = server_now() else now = tonumber(ARGV[1]) end
return {STAT[tonumber(ARGV[2])](read_state(KEYS[1]), now, tonumber(ARGV[3]), tonumber(ARGV[4]), {}, KEYS[2])}
