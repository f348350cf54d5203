-- Lua twin of throttle/src/strategy/leaky_bucket_queue.rs, step for step;
-- tests/tests/redis_differential.rs checks that both decide alike. TAG (and
-- HEADER_TAG) come from the codec's tag table (strategy/codec.rs, `tags`).
-- leaky_bucket_queue: header fields HEADER_TAG, last_ms, head_leaked, total, base,
-- head_total, count, and the running total of each queued hit in the entries list
-- (see entries.lua), head first. The queue holds total - base of cost: `total` is
-- the running total at the tail, `base` the one before the head, `head_total` the
-- head's, and `head_leaked` how much of the head had drained at last_ms, in units.
-- The meter decides on the queue's undrained cost, from the header alone; the queue
-- changes only on admission.

-- The header, or nil when absent or unreadable.
local function queue_header(state)
  if not (state and #state == 7 and state[1] == HEADER_TAG) then return nil end
  local h = { last = state[2], head_leaked = state[3], total = state[4], base = state[5], head_total = state[6],
    count = state[7] }
  if h.count < 1 or h.base >= h.head_total or h.head_total > h.total then return nil end
  if (h.count == 1) ~= (h.head_total == h.total) then return nil end
  return h
end

-- last_ms, the undrained level at last_ms and how much of the head had drained then
-- (never more than the head: state written under another rate may say otherwise).
local function queue_level(h, period)
  if not h then return 0, 0, 0 end
  local drained = math.min(h.head_leaked, (h.head_total - h.base) * period)
  return h.last, (h.total - h.base) * period - drained, drained
end

-- How many whole hits have left the queue once `pos` units past `base` have
-- drained (less than all of it): those whose running total is at most
-- base + floor(pos / period).
local function queue_left(entries, h, pos, period)
  local reach = h.base + idiv(pos, period)
  if reach < h.head_total then return 0 end
  check_size(h, entries, h.count)
  return search(0, h.count - 1, function(i) return entry_number(redis.call('LINDEX', entries, i)) > reach end)
end

local function queue_decide(h, now, limit, period, cost, entries)
  local last, level, drained = queue_level(h, period)
  local allowed, remaining, wait, reset, new_last = bucket_decide(last, level, now, limit, period, cost, limit * period)
  if allowed == 0 then return 0, remaining, wait, reset end
  -- Drain what leaked since `last` from the head, whole hits first; an empty queue
  -- restarts its running total at 0.
  local current = bucket_read(last, level, now, limit)
  local count, total, base, head_total, head_leaked, popped = 0, 0, 0, 0, 0, 0
  if h and current > 0 then
    local pos = drained + level - current
    popped = queue_left(entries, h, pos, period)
    check_size(h, entries, h.count)
    count, total, base, head_total = h.count - popped, h.total, h.base, h.head_total
    if popped > 0 then
      local pair = redis.call('LRANGE', entries, popped - 1, popped)
      base, head_total = entry_number(pair[1]), entry_number(pair[2])
    end
    head_leaked = pos - (base - h.base) * period
  end
  local new_total = total + cost
  if count == 0 then head_total = new_total end
  local shift = 0
  if new_total >= REBASE_AT then shift = base end
  local header = { HEADER_TAG, new_last, head_leaked, new_total - shift, base - shift, head_total - shift, count + 1 }
  local function apply()
    if count == 0 then
      redis.call('DEL', entries) -- drained, or left beside an unreadable header
    elseif popped > 0 then
      redis.call('LTRIM', entries, popped, -1)
    end
    redis.call('RPUSH', entries, fmt(new_total))
    if shift > 0 then rebase(entries, shift, 1) end
  end
  local level_after = (new_total - base) * period - math.min(head_leaked, (head_total - base) * period)
  return 1, remaining, 0, reset, header, new_last + cdiv(level_after, limit), apply
end

-- remaining, wait_ms, reset_ms, queue_len, queue_cost, capacity, last_leak_ms, and the
-- exact level (waits for any cost are computed from it in Rust: strategy/wait.rs)
local function queue_stat(h, now, limit, period, entries)
  local last, level, drained = queue_level(h, period)
  local admit = limit * period
  local current, _, shift = bucket_read(last, level, now, limit)
  local wait = 0
  if current + period > admit then wait = shift + cdiv(current + period - admit, limit) end
  local len, cost = 0, 0
  if h and current > 0 then
    len = h.count - queue_left(entries, h, drained + level - current, period)
    cost = cdiv(current, period)
  end
  return bucket_remaining(current, admit, period, limit), wait, shift + cdiv(current, limit), len, cost, limit, last,
    current
end

-- Gives back what the hit still holds, as the leaky bucket does (its cost less what
-- has drained since `since`, at most the level), by draining that much more from the
-- head, as the in-memory queue does: the queue's level is then the bucket's. Returns
-- given (0/1) and, when 1, the header and its expiry and the function that trims the
-- entries.
local function queue_refund(h, now, limit, period, cost, since, entries)
  -- What may have drained since `since`; exact whenever it is below the hit's units
  -- (which stay below 2^53), and compared only with them otherwise.
  local drained_since = math.max(now - since, 0) * limit
  if not h or drained_since >= cost * period then return 0 end
  local last, level, drained = queue_level(h, period)
  local current, now_eff = bucket_read(last, level, now, limit)
  local give = math.min(cost * period - drained_since, current)
  if give <= 0 then return 0 end
  local after = current - give
  if after == 0 then return 1, {}, 0, function() end end
  local pos = drained + level - after
  local popped = queue_left(entries, h, pos, period)
  check_size(h, entries, h.count)
  local base, head_total = h.base, h.head_total
  if popped > 0 then
    local pair = redis.call('LRANGE', entries, popped - 1, popped)
    base, head_total = entry_number(pair[1]), entry_number(pair[2])
  end
  local head_leaked = pos - (base - h.base) * period
  local header = { HEADER_TAG, now_eff, head_leaked, h.total, base, head_total, h.count - popped }
  local function apply()
    if popped > 0 then redis.call('LTRIM', entries, popped, -1) end
  end
  return 1, header, now_eff + cdiv(after, limit), apply
end

local function decide(state, now, limit, period, cost, params, entries)
  return or_fresh(queue_decide, queue_header(state), now, limit, period, cost, entries)
end

local function refund(state, now, limit, period, cost, since, entries)
  return or_fresh(queue_refund, queue_header(state), now, limit, period, cost, since, entries)
end

local function stat(state, now, limit, period, params, entries)
  return or_fresh(queue_stat, queue_header(state), now, limit, period, entries)
end
