
-- Entries in a sorted set beside the state key, for the sliding log and the queue:
-- one member per entry, named by the running total of cost up to and including it
-- (so names are unique and increasing) and scored by its time (log) or by that same
-- total (queue). The header in the state key holds the totals, the count and the
-- oldest entry, so a decision reads a few entries by rank or score, never all.

-- Running totals are rebased to 0 before they reach this, so they stay exact.
local REBASE_AT = 4503599627370496 -- 2^52

-- Raised by a read that finds what no write of ours leaves; the decision is then
-- made again on a fresh state.
local CORRUPT = {}

local function fmt(n) return string.format('%.0f', n) end

-- A running total or a score as read back, or CORRUPT.
local function entry_number(text)
  local n = text and read_field(text)
  if n == nil then error(CORRUPT) end
  return n
end

-- The running total and score of the entry at `rank` (0: the oldest).
local function entry_at(entries, rank)
  local e = redis.call('ZRANGE', entries, rank, rank, 'WITHSCORES')
  return entry_number(e[1]), entry_number(e[2])
end

-- Whether `entries` is a sorted set of exactly `count` entries, as the header says.
local function holds(entries, count)
  return redis.pcall('ZCARD', entries) == count
end

-- f(header, ...), or f(nil, ...) (a fresh state) if the entries turn out corrupt.
local function or_fresh(f, header, ...)
  if header then
    local result = {pcall(f, header, ...)}
    if result[1] then return unpack(result, 2, table.maxn(result)) end
    if result[2] ~= CORRUPT then error(result[2], 0) end
  end
  return f(nil, ...)
end

-- Subtracts `shift` from every running total (and from the score when `by_total`).
-- O(entries), and needed once per 2^51 or so of admitted cost.
local function rebase(entries, shift, by_total)
  local all = redis.call('ZRANGE', entries, 0, -1, 'WITHSCORES')
  redis.call('DEL', entries)
  local args = {}
  for i = 1, #all, 2 do
    local total, score = read_field(all[i]), read_field(all[i + 1])
    if total and score then
      total = total - shift
      if by_total then score = total end
      args[#args + 1] = fmt(score)
      args[#args + 1] = fmt(total)
    end
    if #args >= 1000 or (i + 1 >= #all and #args > 0) then
      redis.call('ZADD', entries, unpack(args))
      args = {}
    end
  end
end
