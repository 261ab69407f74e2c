"""Streamed turns through a lease against the emulator over HTTP and a real Redis: deltas and
the final turn, tool calls mid-stream, concurrent streams, early stops, dropped connections."""
