"""The pool against a real Redis: leasing, waiting, growth, expiry, cancellation, many processes
at once, bad input, a Redis Cluster."""
