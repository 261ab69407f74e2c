-- reap: claim expired leases (and stale settling claims) for the caller to settle.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] limit
-- ARGV[2] settle_ms   how long the caller's claim lasts before another reaper may take it over
-- ARGV[3] token       the caller's token (an abandoned caller's claims are given up)
-- ARGV[4] delay_ms    how long after its deadline an expired lease is reclaimed (claim_expired)
-- Returns {next_ms, thread...}: the claimed thread ids, after the time until the next expiry
-- (-1: none), for waiters that reap while they wait.
local delay_ms = tonumber(ARGV[4])
local claimed = claim_expired(tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3], delay_ms)
return {next_expiry(delay_ms), unpack(claimed)}
