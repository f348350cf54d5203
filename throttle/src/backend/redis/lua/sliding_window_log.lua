
-- sliding_window_log: header fields 9, newest_ms, total, base, count, oldest_ms,
-- oldest_total, and one entry per admitting millisecond, scored by its time (see
-- entries.lua). The log holds total - base of cost: `total` is the running total at
-- the newest entry and `base` the one before the oldest. A hit counts while
-- ms + period > now.

-- The header, or nil when absent, unreadable or out of step with the entries.
local function log_header(state, entries)
  if not (state and #state == 7 and state[1] == 9) then return nil end
  local h = { newest = state[2], total = state[3], base = state[4], count = state[5], oldest = state[6],
    oldest_total = state[7] }
  if h.count < 1 or h.oldest > h.newest or h.base >= h.oldest_total or h.oldest_total > h.total then return nil end
  if not holds(entries, h.count) then return nil end
  return h
end

-- The log at `now`: now_eff, how many entries have aged out, the running total
-- before the first live entry, and that entry's time and total (nil when none is).
local function log_read(h, now, period, entries)
  if not h then return now, 0, 0 end
  local now_eff = math.max(now, h.newest)
  local cutoff = now_eff - period -- entries at or before it have aged out
  if h.oldest > cutoff then return now_eff, 0, h.base, h.oldest, h.oldest_total end
  local gone = redis.call('ZCOUNT', entries, '-inf', fmt(cutoff))
  if gone < 1 then error(CORRUPT) end
  if gone >= h.count then return now_eff, h.count, h.total end
  local pair = redis.call('ZRANGE', entries, gone - 1, gone, 'WITHSCORES')
  return now_eff, gone, entry_number(pair[1]), entry_number(pair[4]), entry_number(pair[3])
end

-- The time of the first live entry (rank `rank`, time `ms`, running total `total`)
-- or later one whose running total reaches `target`: once it ages out, enough has.
-- Gallops from the first live entry, so a small cost reads few entries; the newest
-- always reaches the target.
local function log_reaching(entries, h, target, rank, ms, total)
  if total >= target then return ms end
  local lo, step, hi, hi_ms = rank, 1, nil, nil
  while not hi do
    local r = math.min(rank + step, h.count - 1)
    local t, m = entry_at(entries, r)
    if t >= target then
      hi, hi_ms = r, m
    elseif r == h.count - 1 then
      error(CORRUPT)
    else
      lo, step = r, step * 2
    end
  end
  while hi - lo > 1 do
    local mid = lo + idiv(hi - lo, 2)
    local t, m = entry_at(entries, mid)
    if t >= target then hi, hi_ms = mid, m else lo = mid end
  end
  return hi_ms
end

local function log_decide(h, now, limit, period, cost, entries)
  local now_eff, gone, before, first_ms, first_total = log_read(h, now, period, entries)
  local count, total, newest, reset = 0, 0, 0, 0
  if h then
    count, total, newest = h.count, h.total, h.newest
    reset = math.max(newest + period - now, 0)
  end
  local logged = total - before
  local remaining = math.max(limit - logged, 0)
  if cost > limit then return 0, remaining, NEVER, reset end
  if logged + cost > limit then
    local ms = log_reaching(entries, h, total + cost - limit, gone, first_ms, first_total)
    return 0, remaining, ms + period - now, reset
  end
  -- Admitted: age out the old entries, then add this hit (to the newest entry if it
  -- is in the same millisecond). An empty log starts its running total at 0 again.
  local live = count - gone
  local coalesce = live > 0 and newest == now_eff
  local base, new_total, oldest, oldest_total = before, total + cost, first_ms, first_total
  if live == 0 then
    base, new_total, oldest, oldest_total = 0, cost, now_eff, cost
  elseif coalesce and live == 1 then
    oldest_total = new_total
  end
  local shift = 0
  if new_total >= REBASE_AT then shift = base end
  local new_count = live + 1
  if coalesce then new_count = live end
  local header = { 9, now_eff, new_total - shift, base - shift, new_count, oldest, oldest_total - shift }
  local function apply()
    if live == 0 then
      redis.call('DEL', entries) -- aged out, or left by an unreadable state
    elseif gone > 0 then
      redis.call('ZREMRANGEBYRANK', entries, 0, gone - 1)
    end
    if coalesce then redis.call('ZREM', entries, fmt(total)) end
    redis.call('ZADD', entries, fmt(now_eff), fmt(new_total))
    if shift > 0 then rebase(entries, shift, false) end
  end
  return 1, limit - logged - cost, 0, now_eff + period - now, header, now_eff + period, apply
end

-- remaining, wait_ms, reset_ms, window_start_ms, entry_count, current_count, oldest_entry_ms
local function log_stat(h, now, limit, period, entries)
  local now_eff, gone, before, first_ms, first_total = log_read(h, now, period, entries)
  local count, total, reset = 0, 0, 0
  if h then
    count, total = h.count, h.total
    reset = math.max(h.newest + period - now, 0)
  end
  local logged = total - before
  local wait = 0
  if logged + 1 > limit then
    wait = log_reaching(entries, h, total + 1 - limit, gone, first_ms, first_total) + period - now
  end
  return math.max(limit - logged, 0), wait, reset, math.max(now_eff - period, 0), count - gone, logged, first_ms or 0
end

local function decide(state, now, limit, period, cost, params, entries)
  return or_fresh(log_decide, log_header(state, entries), now, limit, period, cost, entries)
end

local function stat(state, now, limit, period, params, entries)
  return or_fresh(log_stat, log_header(state, entries), now, limit, period, entries)
end
