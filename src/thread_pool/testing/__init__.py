"""For the tests and dev tools of thread_pool and of its users: the pytest plugin (fixtures for a
real Redis and the emulator), a private Redis server (single or cluster), and the stress test."""
