"""thread_pool: pools of upstream conversation threads, leased through Redis."""
