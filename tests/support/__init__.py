"""What the tests share: helpers, the evidence checks, worker processes. No tests here."""
