"""The demo: ``thread-pool stress`` run as a user runs it, and the Redis it finds or starts
(``thread_pool.testing.redis_server``)."""
