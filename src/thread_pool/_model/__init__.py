"""Pure model code: limits, validation, turn and log types, status and backup formats. No I/O."""
