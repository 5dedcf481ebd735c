-- llmgate: extend the concurrency leases of requests still running.
-- KEYS[i]: a lease set; ARGV[1]: the lease in µs; ARGV[i + 1]: the lease's member.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local lease = tonumber(ARGV[1])
local renewed = 0
for i = 1, #KEYS do
  renewed = renewed + redis.call('ZADD', KEYS[i], 'XX', 'CH', now + lease, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], math.ceil(lease / 1000) + 1000)
end
return renewed
