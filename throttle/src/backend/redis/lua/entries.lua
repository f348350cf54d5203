-- The entries lists of the sliding log and the queue, which Redis keeps beside their
-- header (in Rust the whole state is one value: strategy/sliding_window_log.rs and
-- strategy/leaky_bucket_queue.rs). tests/tests/redis_differential.rs checks both alike.
-- Entries in a list beside the state key, oldest first, for the sliding log (two
-- elements per entry: its time and its running total) and the queue (one: its
-- running total). An entry's running total is the cost up to and including it, so
-- the cost between two entries is a subtraction. The header in the state key holds
-- the totals, the count and the oldest entry: a rejection of cost 1 reads no entry,
-- other calls read O(log d) entries near the old end (d: how far from it the answer
-- lies), and admissions trim what has aged out or drained (each entry once).

-- Running totals are rebased to 0 before they reach this, so they stay exact.
local REBASE_AT = 4503599627370496 -- 2^52

-- Raised by a read that finds what no write of ours leaves; the decision is then
-- made again on a fresh state.
local CORRUPT = {}

local function fmt(n) return string.format('%.0f', n) end

-- A number read back from the entries, or CORRUPT.
local function entry_number(text)
  local n = text and read_field(text)
  if n == nil then error(CORRUPT) end
  return n
end

-- Before the first read or write of the entries: they must be a list of `size`
-- elements, as the header says (checked once per call).
local function check_size(h, entries, size)
  if h.checked then return end
  if redis.pcall('LLEN', entries) ~= size then error(CORRUPT) end
  h.checked = true
end

-- The first index in (lo, hi] for which `reached(index)` holds, given that it does
-- not at `lo` and does at `hi` (never asked): gallops from `lo`, then bisects.
local function search(lo, hi, reached)
  local step = 1
  while lo + step < hi do
    if reached(lo + step) then
      hi = lo + step
      break
    end
    lo, step = lo + step, step * 2
  end
  while hi - lo > 1 do
    local mid = lo + idiv(hi - lo, 2)
    if reached(mid) then hi = mid else lo = mid end
  end
  return hi
end

-- f(header, ...), or f(nil, ...) (a fresh state) if the entries turn out corrupt.
local function or_fresh(f, header, ...)
  if header then
    local result = { pcall(f, header, ...) }
    if result[1] then return unpack(result, 2, table.maxn(result)) end
    if result[2] ~= CORRUPT then error(result[2], 0) end
  end
  return f(nil, ...)
end

-- Subtracts `shift` from every running total (the last of each entry's `width`
-- elements). O(entries), needed once per 2^51 or so of admitted cost.
local function rebase(entries, shift, width)
  local all = redis.call('LRANGE', entries, 0, -1)
  redis.call('DEL', entries)
  local args = {}
  for i = 1, #all do
    local n = read_field(all[i]) or 0
    if i % width == 0 then n = n - shift end
    args[#args + 1] = fmt(n)
    if #args >= 1000 or i == #all then
      redis.call('RPUSH', entries, unpack(args))
      args = {}
    end
  end
end
