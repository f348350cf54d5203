
-- leaky_bucket_queue: fields 7, last_ms, head_leaked, cost1, cost2, ... (head first).
-- The meter decides on the queue's undrained cost; the queue changes only on admission.
local function decide(state, now, limit, period, cost, params)
  local last, head_leaked, queue = 0, 0, {}
  if state and state[1] == 7 and #state >= 3 then
    last, head_leaked = state[2], state[3]
    for i = 4, #state do queue[#queue + 1] = state[i] end
  end
  local function level_of(from, leaked, extra)
    local total = extra
    for i = from, #queue do total = total + queue[i] end
    local head = queue[from] or extra
    return total * period - math.min(leaked, head * period)
  end
  local level = level_of(1, head_leaked, 0)
  local allowed, remaining, wait, reset, new_last = bucket_decide(last, level, now, limit, period, cost, limit * period)
  if allowed == 0 then return 0, remaining, wait, reset end
  -- Drain what leaked since `last` from the head, whole hits first.
  local budget = level - bucket_read(last, level, now, limit)
  local head, leaked = 1, head_leaked
  while true do
    if head > #queue then
      leaked = 0
      break
    end
    local units = queue[head] * period
    local drained = math.min(leaked, units)
    if budget < units - drained then
      leaked = drained + budget
      break
    end
    budget = budget - (units - drained)
    head = head + 1
    leaked = 0
  end
  local fields = {7, new_last, leaked}
  for i = head, #queue do fields[#fields + 1] = queue[i] end
  fields[#fields + 1] = cost
  return 1, remaining, 0, reset, fields, new_last + cdiv(level_of(head, leaked, cost), limit)
end
