"""The upstream side that needs no event loop: the retry policy, the send guard, and the builder of
a backend from its name (the backends themselves are in ``_async``/``_sync``)."""
