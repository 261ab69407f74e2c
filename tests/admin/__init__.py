"""Operating pools: the admin API (prewarm, status, resize, drain, delete, export and import)
and the ``thread-pool`` command line."""
