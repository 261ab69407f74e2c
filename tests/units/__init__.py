"""Tests of pure code: no Redis, no emulator, no processes (turn decisions, error mapping)."""
