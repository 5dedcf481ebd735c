-- llmgate: admit one request against every limit rule that applies to it,
-- all or nothing, in one round trip. Time comes from Redis (TIME), so
-- replicas with skewed clocks agree. Times are microseconds.
--
-- KEYS[i]: rule i's state key (a hash tag keeps a rule's derived keys in its slot).
-- ARGV[1]: a member unique to this request (its sliding_log entries are member:rule:unit,
--          its concurrency lease is member itself).
-- Then 8 values per rule: algorithm, count, period_us, burst, cost, extra, max_wait_us, shadow
--   algorithm: fixed_window | sliding_window | sliding_log | meter (token_bucket, gcra,
--              leaky_bucket as a meter) | shaper (leaky_bucket shaping) | concurrency
--   extra: the shaper's delay (units let through unheld); concurrency: the lease in µs
-- Returns {allowed, now_us, then 5 integers per rule: allowed, remaining, reset_us, retry_after_us (-1: never), delay_us}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local member = ARGV[1]
local n = #KEYS
local floor, ceil, max, min = math.floor, math.ceil, math.max, math.min

local function ms(us) return max(1, ceil(us / 1000)) end

local checks = {}
local commits = {}

-- A window's count is a field of the rule's key (a hash: window number →
-- count), so every key a script touches is one it declares: Redis Cluster
-- moves a slot's keys whole, and a script's keys must be in one slot.
-- Only windows from `first` on still count; older fields are dropped.
local function drop_before(key, first, keep)
  if redis.call('HLEN', key) <= keep then return end
  for _, f in ipairs(redis.call('HKEYS', key)) do
    if tonumber(f) < first then redis.call('HDEL', key, f) end
  end
end

checks.fixed_window = function(key, r)
  local w = floor(now / r.period)
  local c = tonumber(redis.call('HGET', key, w) or '0')
  local ok = c + r.cost <= r.count
  local reset = (w + 1) * r.period - now
  local retry = 0
  if not ok then retry = (r.cost > r.count) and -1 or reset end
  return ok, max(0, r.count - c - (ok and r.cost or 0)), reset, retry, 0, {w = w}
end
commits.fixed_window = function(key, r, s)
  redis.call('HINCRBY', key, s.w, r.cost)
  drop_before(key, s.w, 1)
  redis.call('PEXPIRE', key, ms(r.period) + 1000)
end

checks.sliding_window = function(key, r)
  local w = floor(now / r.period)
  local elapsed = now - w * r.period
  local counts = redis.call('HMGET', key, w, w - 1)
  local cur = tonumber(counts[1] or '0')
  local prev = tonumber(counts[2] or '0')
  local weighted = prev * (r.period - elapsed) / r.period + cur
  local ok = weighted + r.cost <= r.count + 1e-9
  local to_next = r.period - elapsed
  local after = cur + (ok and r.cost or 0)
  local reset = (after > 0) and (to_next + r.period) or ((prev > 0) and to_next or 0)
  local retry = 0
  if not ok then
    if r.cost > r.count then
      retry = -1
    elseif cur + r.cost <= r.count then -- this window, once the previous one weighs less
      local e_min = r.period - (r.count - cur - r.cost) * r.period / prev
      retry = max(1, ceil(e_min - elapsed))
    else -- the next window, where this one becomes the weighted one
      retry = ceil(to_next + max(0, r.period - (r.count - r.cost) * r.period / cur))
    end
  end
  return ok, max(0, floor(r.count - weighted + 1e-9) - (ok and r.cost or 0)), reset, retry, 0, {w = w}
end
commits.sliding_window = function(key, r, s)
  redis.call('HINCRBY', key, s.w, r.cost)
  drop_before(key, s.w - 1, 2)
  redis.call('PEXPIRE', key, 2 * ms(r.period) + 1000)
end

-- The seed's script keyed every request of one second to the same member;
-- here every unit is its own member: request id, rule and unit number.
checks.sliding_log = function(key, r)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - r.period)
  local c = redis.call('ZCARD', key)
  local ok = c + r.cost <= r.count
  local reset, retry = 0, 0
  if ok then -- whole again when the newest entry (this request's) has left the window
    reset = r.period
  else
    local newest = redis.call('ZRANGE', key, -1, -1, 'WITHSCORES')
    if newest[2] then reset = tonumber(newest[2]) + r.period - now end
  end
  if not ok then
    if r.cost > r.count then
      retry = -1
    else -- until enough of the oldest entries have left the window
      local e = redis.call('ZRANGE', key, c + r.cost - r.count - 1, c + r.cost - r.count - 1, 'WITHSCORES')
      retry = max(1, tonumber(e[2]) + r.period - now)
    end
  end
  return ok, max(0, r.count - c - (ok and r.cost or 0)), reset, retry, 0, {}
end
commits.sliding_log = function(key, r, s, i)
  local args = {}
  for j = 1, r.cost do
    args[#args + 1] = now
    args[#args + 1] = member .. ':' .. i .. ':' .. j
    if #args >= 1000 then
      redis.call('ZADD', key, unpack(args))
      args = {}
    end
  end
  if #args > 0 then redis.call('ZADD', key, unpack(args)) end
  redis.call('PEXPIRE', key, ms(r.period) + 1000)
end

-- Token bucket, GCRA and the leaky bucket as a meter are one model: a
-- theoretical arrival time that each unit moves by period/count, allowed
-- to run ahead of now by at most burst units.
checks.meter = function(key, r)
  local T = r.period / r.count
  local tol = r.burst * T
  local tat = tonumber(redis.call('GET', key) or '0')
  -- Relative to now: the TAT is an integer of µs, so tat - now is exact.
  local behind = max(tat - now, 0)
  local ahead_after = behind + r.cost * T
  local ok = ahead_after <= tol + 1e-6
  local ahead = ok and ahead_after or behind
  local retry = 0
  if not ok then retry = (r.cost > r.burst) and -1 or max(1, ceil(ahead_after - tol)) end
  return ok, max(0, floor((tol - ahead) / T + 1e-9)), ceil(ahead), retry, 0, {tat = now + ahead_after}
end
commits.meter = function(key, r, s)
  -- Whole µs, rounded up: never a credit the limit did not give.
  redis.call('SET', key, string.format('%.0f', ceil(s.tat)), 'PX', ms(s.tat - now) + 1000)
end

-- nginx's limit_req: a line that drains one unit per period/count; past
-- `extra` units of excess a request is held until the line has drained to
-- them (at most max_wait); a request finding it drained is the conforming one.
checks.shaper = function(key, r)
  local T = r.period / r.count
  local cap = r.burst * T
  local st = redis.call('HMGET', key, 'l', 't')
  local level = -T
  if st[1] then level = max(-T, tonumber(st[1]) - (now - tonumber(st[2]))) end
  local after = max(0, level + r.cost * T)
  local ok = after <= cap + 1e-6
  local delay = 0
  if ok then
    delay = max(0, ceil(after - r.extra * T))
    if delay > r.max_wait then ok = false end
  end
  local lvl = ok and after or max(0, level)
  local retry = 0
  if not ok then
    local entry = r.cost - 1
    local limit_level = min(cap, r.extra * T + r.max_wait)
    if entry > r.burst or limit_level < entry * T then retry = -1 else retry = max(1, ceil(after - limit_level)) end
    delay = 0
  end
  return ok, max(0, floor((cap - lvl) / T + 1e-9)), ceil(lvl), retry, delay, {level = after}
end
commits.shaper = function(key, r, s)
  redis.call('HSET', key, 'l', string.format('%.3f', s.level), 't', now)
  -- Until it has drained to the fresh state (−T: the next request is the conforming one).
  redis.call('PEXPIRE', key, ms(s.level + r.period / r.count) + 1000)
end

-- Concurrency: a lease per request in flight, scored by its expiry; the
-- gateway renews it while the request runs and removes it when it ends, so
-- a lease outlives its request only when its replica died holding it.
checks.concurrency = function(key, r)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  local c = redis.call('ZCARD', key)
  local ok = c + 1 <= r.count
  local retry = 0
  if not ok then retry = (r.count < 1) and -1 or 1000000 end
  return ok, max(0, r.count - c - (ok and 1 or 0)), 0, retry, 0, {}
end
commits.concurrency = function(key, r, s, i)
  redis.call('ZADD', key, now + r.extra, member)
  redis.call('PEXPIRE', key, ms(r.extra) + 1000)
end

local rules, states, verdicts = {}, {}, {}
local all = true
for i = 1, n do
  local b = 1 + (i - 1) * 8
  local r = {algo = ARGV[b + 1], count = tonumber(ARGV[b + 2]), period = tonumber(ARGV[b + 3]),
             burst = tonumber(ARGV[b + 4]), cost = tonumber(ARGV[b + 5]), extra = tonumber(ARGV[b + 6]),
             max_wait = tonumber(ARGV[b + 7]), shadow = ARGV[b + 8] == '1'}
  local check = checks[r.algo]
  if not check then return redis.error_reply('llmgate: unknown algorithm ' .. tostring(r.algo)) end
  local ok, remaining, reset, retry, delay, s = check(KEYS[i], r)
  rules[i], states[i] = r, s
  verdicts[i] = {ok and 1 or 0, remaining, reset, retry, delay}
  if not ok and not r.shadow then all = false end
end
if all then
  for i = 1, n do
    if verdicts[i][1] == 1 then commits[rules[i].algo](KEYS[i], rules[i], states[i], i) end
  end
end
local out = {all and 1 or 0, now}
for i = 1, n do
  for j = 1, 5 do out[#out + 1] = floor(verdicts[i][j]) end
end
return out
