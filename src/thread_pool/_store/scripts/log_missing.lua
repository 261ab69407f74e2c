-- log_missing: what a thread is missing from the pool's log, read in one round trip.
-- KEYS[1] the pool's meta hash (the other keys are named from it, see _common.lua)
-- ARGV[1] thread
-- Returns thread_missing(thread) (see _common.lua).
return thread_missing(ARGV[1])
