-- llmgate: correct the token cost of an admitted request once its real usage
-- is known (a refund when it used less than estimated, a charge when more).
-- KEYS[i]: rule i's state key. ARGV[1]: the request's member; then 6 values
-- per rule: algorithm, count, period_us, delta, position (the rule's place
-- in the admit call), cost (as admitted). (sliding_log cannot count tokens:
-- the config refuses it.)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local member = ARGV[1]
local floor, ceil, max = math.floor, math.ceil, math.max
for i = 1, #KEYS do
  local b = 1 + (i - 1) * 6
  local algo, count, period = ARGV[b + 1], tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local delta, pos, cost = tonumber(ARGV[b + 4]), ARGV[b + 5], tonumber(ARGV[b + 6])
  local key = KEYS[i]
  if algo == 'fixed_window' or algo == 'sliding_window' then -- the current window's field (see redis_admit.lua)
    local w = floor(now / period)
    if redis.call('HINCRBY', key, w, delta) < 0 then redis.call('HSET', key, w, 0) end
    redis.call('PEXPIRE', key, 2 * max(1, ceil(period / 1000)) + 1000)
  elseif algo == 'meter' then
    local T = period / count
    local tat = tonumber(redis.call('GET', key) or '0')
    local behind = max(tat - now, 0)
    local ahead = max(0, behind + delta * T) -- a refund never gives credit beyond a full bucket
    redis.call('SET', key, string.format('%.0f', ceil(now + ahead)), 'PX', max(1, ceil(ahead / 1000)) + 1000)
  elseif algo == 'shaper' then
    local T = period / count
    local st = redis.call('HMGET', key, 'l', 't')
    local level = 0
    if st[1] then level = max(0, tonumber(st[1]) - (now - tonumber(st[2]))) end
    level = max(0, level + delta * T)
    redis.call('HSET', key, 'l', string.format('%.3f', level), 't', now)
    redis.call('PEXPIRE', key, max(1, ceil((level + T) / 1000)) + 1000)
  end
end
return #KEYS
