"""The chaos run: a load driver with fault injection, and an independent checker of its evidence."""
