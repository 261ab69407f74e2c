"""Bridges between the pool and frameworks that make their own upstream calls; each module
needs its framework installed (an optional extra), and uses only the pool's public API."""
