"""Turns through a lease against the emulator over HTTP: replies and fences, tool calls, faults,
the request in flight, turns from many processes."""
