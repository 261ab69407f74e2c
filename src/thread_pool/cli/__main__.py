"""``python -m thread_pool.cli``: the same as the ``thread-pool`` console script."""

from thread_pool.cli.app import main

main()
