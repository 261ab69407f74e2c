"""Context merging: what each thread of a pool holds of the pool's log, read back upstream."""
