"""Redis plumbing: key names, the Lua scripts and their loader, reply decoding, clients and error
mapping. It makes no pool decisions."""
