-- llmgate: end the concurrency leases of one request.
-- KEYS[i]: a concurrency rule's lease set; ARGV[i]: the lease's member.
for i = 1, #KEYS do redis.call('ZREM', KEYS[i], ARGV[i]) end
return #KEYS
