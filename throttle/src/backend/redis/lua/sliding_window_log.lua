-- Lua twin of throttle/src/strategy/sliding_window_log.rs, step for step;
-- tests/tests/redis_differential.rs checks that both decide alike. TAG (and
-- HEADER_TAG) come from the codec's tag table (strategy/codec.rs, `tags`).
-- sliding_window_log: header fields HEADER_TAG, newest_ms, total, base, count, oldest_ms,
-- oldest_total, and one entry (ms, running total) per admitting millisecond in the
-- entries list (see entries.lua). The log holds total - base of cost: `total` is the
-- running total at the newest entry and `base` the one before the oldest. A hit
-- counts while ms + period > now.

-- The header, or nil when absent or unreadable.
local function log_header(state)
  if not (state and #state == 7 and state[1] == HEADER_TAG) then return nil end
  local h = { newest = state[2], total = state[3], base = state[4], count = state[5], oldest = state[6],
    oldest_total = state[7] }
  if h.count < 1 or h.base >= h.oldest_total or h.oldest_total > h.total or h.oldest > h.newest then return nil end
  if (h.count == 1) ~= (h.oldest == h.newest) or (h.count == 1) ~= (h.oldest_total == h.total) then return nil end
  return h
end

-- Time and running total of the entry at `index` (0: the oldest).
local function log_entry(entries, index)
  local e = redis.call('LRANGE', entries, 2 * index, 2 * index + 1)
  return entry_number(e[1]), entry_number(e[2])
end

-- The log at `now`: now_eff, how many entries have aged out, the running total
-- before the first live entry, and that entry's time and total (nil when none is).
local function log_read(h, now, period, entries)
  if not h then return now, 0, 0 end
  local now_eff = math.max(now, h.newest)
  local cutoff = now_eff - period -- entries at or before it have aged out
  if h.oldest > cutoff then return now_eff, 0, h.base, h.oldest, h.oldest_total end
  if h.newest <= cutoff then return now_eff, h.count, h.total end
  check_size(h, entries, 2 * h.count)
  local gone = search(0, h.count - 1, function(i) return (log_entry(entries, i)) > cutoff end)
  local e = redis.call('LRANGE', entries, 2 * gone - 2, 2 * gone + 1)
  return now_eff, gone, entry_number(e[2]), entry_number(e[3]), entry_number(e[4])
end

-- The time of the first live entry (index `first`, time `ms`, running total `total`)
-- or later one whose running total reaches `target`: once it ages out, enough has.
-- The newest entry always reaches it.
local function log_reaching(entries, h, target, first, ms, total)
  if total >= target then return ms end
  check_size(h, entries, 2 * h.count)
  local times = {}
  local index = search(first, h.count - 1, function(i)
    local t, running = log_entry(entries, i)
    times[i] = t
    return running >= target
  end)
  return times[index] or h.newest
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
  -- Admitted: trim the entries that aged out, then add this hit (to the newest entry
  -- if it is in the same millisecond). An empty log restarts its running total at 0.
  local live = count - gone
  if live > 0 then check_size(h, entries, 2 * count) end
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
  local header = { HEADER_TAG, now_eff, new_total - shift, base - shift, new_count, oldest, oldest_total - shift }
  local function apply()
    if live == 0 then
      redis.call('DEL', entries) -- aged out, or left beside an unreadable header
    elseif gone > 0 then
      redis.call('LTRIM', entries, 2 * gone, -1)
    end
    if coalesce then
      redis.call('LSET', entries, -1, fmt(new_total))
    else
      redis.call('RPUSH', entries, fmt(now_eff), fmt(new_total))
    end
    if shift > 0 then rebase(entries, shift, 2) end
  end
  return 1, limit - logged - cost, 0, now_eff + period - now, header, now_eff + period, apply
end

-- remaining, wait_ms, reset_ms, window_start_ms, entry_count, current_count, oldest_entry_ms,
-- and 0 (the queue's eighth value)
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
  return math.max(limit - logged, 0), wait, reset, math.max(now_eff - period, 0), count - gone, logged, first_ms or 0, 0
end

-- Gives back `cost` from the entries logged at or after `since`, earliest first, as
-- the in-memory log does (taking from an earlier entry than the hit's own keeps cost
-- logged longer, which errs toward counting); nothing once a whole period has passed
-- since `since`. Rewrites the entries from the first one it reads: O(entries logged
-- since `since`). Returns given (0/1) and, when 1, the header and its expiry and the
-- function that writes the entries.
local function log_refund(h, now, limit, period, cost, since, entries)
  if not h or now - since >= period or h.newest < since then return 0 end
  check_size(h, entries, 2 * h.count)
  local first = 0
  if h.oldest < since then
    first = search(0, h.count - 1, function(i) return (log_entry(entries, i)) >= since end)
  end
  -- The entries from `first`, and the running total before them.
  local before = h.base
  local tail
  if first > 0 then
    tail = redis.call('LRANGE', entries, 2 * first - 1, -1)
    before = entry_number(table.remove(tail, 1))
  else
    tail = redis.call('LRANGE', entries, 0, -1)
  end
  local left = cost
  local kept = {}
  local running, previous = before, before
  for i = 1, #tail, 2 do
    local ms, total = entry_number(tail[i]), entry_number(tail[i + 1])
    local c = total - previous
    previous = total
    local take = math.min(left, c)
    left = left - take
    if c > take then
      running = running + c - take
      kept[#kept + 1] = ms
      kept[#kept + 1] = running
    end
  end
  local given = cost - left
  if given == 0 then return 0 end
  local count = first + #kept / 2
  if count == 0 then return 1, {}, 0, function() end end
  local newest, oldest, oldest_total = h.newest, h.oldest, h.oldest_total
  if #kept > 0 then
    newest = kept[#kept - 1]
  else
    local e = redis.call('LRANGE', entries, 2 * first - 2, 2 * first - 1)
    newest = entry_number(e[1])
  end
  if first == 0 then oldest, oldest_total = kept[1], kept[2] end
  local header = { HEADER_TAG, newest, h.total - given, h.base, count, oldest, oldest_total }
  local function apply()
    if first == 0 then
      redis.call('DEL', entries)
    else
      redis.call('LTRIM', entries, 0, 2 * first - 1)
    end
    local args = {}
    for i = 1, #kept do
      args[#args + 1] = fmt(kept[i])
      if #args >= 1000 or i == #kept then
        redis.call('RPUSH', entries, unpack(args))
        args = {}
      end
    end
  end
  return 1, header, newest + period, apply
end

local function decide(state, now, limit, period, cost, params, entries)
  return or_fresh(log_decide, log_header(state), now, limit, period, cost, entries)
end

local function refund(state, now, limit, period, cost, since, entries)
  return or_fresh(log_refund, log_header(state), now, limit, period, cost, since, entries)
end

local function stat(state, now, limit, period, params, entries)
  return or_fresh(log_stat, log_header(state), now, limit, period, entries)
end
