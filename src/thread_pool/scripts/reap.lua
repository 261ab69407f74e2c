-- reap: claim expired leases (and stale settling claims) for the caller to settle.
-- KEYS: the pool's keys (see _common.lua)
-- ARGV[1] limit
-- ARGV[2] settle_ms   how long the caller's claim lasts before another reaper may take it over
-- Returns the claimed thread ids.
return claim_expired(tonumber(ARGV[1]), tonumber(ARGV[2]))
