-- llmgate: take back what one admit call committed, when the request it was
-- for is refused in another Redis Cluster slot (reserve-then-commit across
-- slots: each slot's admit reserves, a refusal anywhere rolls the others back).
-- KEYS[i]: the state keys of the rules the admit committed (allowed ones).
-- ARGV[1]: the request's member; ARGV[2]: the admit's time (µs, as it returned it);
-- then 5 values per key: algorithm, count, period_us, cost, index (the rule's
-- place in that admit call, which names its sliding-log entries).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local member, at = ARGV[1], tonumber(ARGV[2])
local floor, max = math.floor, math.max
for i = 1, #KEYS do
  local b = 2 + (i - 1) * 5
  local algo, count, period = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local cost, index = tonumber(ARGV[b + 4]), ARGV[b + 5]
  local key = KEYS[i]
  if algo == 'fixed_window' or algo == 'sliding_window' then
    local w = floor(at / period) -- the window it was counted in (gone: nothing to take back)
    if redis.call('HEXISTS', key, w) == 1 and redis.call('HINCRBY', key, w, -cost) < 0 then
      redis.call('HSET', key, w, 0)
    end
  elseif algo == 'sliding_log' then
    for j = 1, cost do redis.call('ZREM', key, member .. ':' .. index .. ':' .. j) end
  elseif algo == 'concurrency' then
    redis.call('ZREM', key, member)
  elseif algo == 'meter' then
    local tat = tonumber(redis.call('GET', key) or '0') - cost * period / count
    if tat > now then
      redis.call('SET', key, string.format('%.0f', math.ceil(tat)), 'KEEPTTL')
    else
      redis.call('DEL', key)
    end
  elseif algo == 'shaper' then -- back to where the admit found it (a drained line is at -T)
    local T = period / count
    local st = redis.call('HMGET', key, 'l', 't')
    if st[1] then
      local level = max(-T, tonumber(st[1]) - (now - tonumber(st[2])) - cost * T)
      redis.call('HSET', key, 'l', string.format('%.3f', level), 't', now)
    end
  end
end
return #KEYS
