
-- sliding_window_log: fields 3, ms1, cost1, ms2, cost2, ... (oldest first, strictly
-- increasing times). A hit counts while ms + period > now.
local function decide(state, now, limit, period, cost, params)
  local times, costs = {}, {}
  if state and state[1] == 3 and #state % 2 == 1 then
    for i = 2, #state, 2 do
      local n = #times
      if n > 0 and times[n] >= state[i] then times, costs = {}, {} break end
      times[n + 1], costs[n + 1] = state[i], state[i + 1]
    end
  end
  local n = #times
  local now_eff = now
  if n > 0 and times[n] > now then now_eff = times[n] end
  local first = 1
  while first <= n and times[first] + period <= now_eff do first = first + 1 end
  local logged = 0
  for i = first, n do logged = logged + costs[i] end
  local remaining = limit - logged
  if remaining < 0 then remaining = 0 end
  local reset = 0
  if n > 0 then
    reset = times[n] + period - now
    if reset < 0 then reset = 0 end
  end
  if cost > limit then return 0, remaining, NEVER, reset end
  if logged + cost > limit then
    local wait = nil
    local left = logged
    for i = first, n do
      left = left - costs[i]
      if left + cost <= limit then
        wait = times[i] + period - now
        break
      end
    end
    if wait == nil then wait = reset end
    if wait > 0 then return 0, remaining, wait, reset end
  end
  local fields = {3}
  local total = 0
  for i = first, n do
    local c = costs[i]
    if i == n and times[i] == now_eff then c = c + cost end
    fields[#fields + 1] = times[i]
    fields[#fields + 1] = c
    total = total + c
  end
  if first > n or times[n] ~= now_eff then
    fields[#fields + 1] = now_eff
    fields[#fields + 1] = cost
    total = total + cost
  end
  remaining = limit - total
  if remaining < 0 then remaining = 0 end
  return 1, remaining, 0, now_eff + period - now, fields, now_eff + period
end
