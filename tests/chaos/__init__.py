"""The chaos run: a load driver with fault injection, its worker processes, and its tests; the
evidence it collects is checked by ``tests.support.evidence``. ``python -m tests.chaos`` runs it
from the command line."""
