"""``python -m tests.chaos``: a chaos run of any size from the command line (see ``--help``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

from tests.chaos.driver import ChaosConfig, run


def main() -> None:
    """Parse the figures, run, print the report; exit 1 when the checker found violations."""
    defaults = ChaosConfig()
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    for item in dataclasses.fields(ChaosConfig):
        value = getattr(defaults, item.name)
        flag = f"--{item.name.replace('_', '-')}"
        if isinstance(value, bool):  # --cluster / --no-cluster
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=value)
            continue
        parser.add_argument(
            flag, type=type(value), default=value, metavar="N", help=f"default {value}"
        )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = vars(parser.parse_args())
    as_json = args.pop("json")
    report = run(ChaosConfig(**args))
    print(json.dumps(dataclasses.asdict(report), indent=2) if as_json else report.summary())
    sys.exit(1 if report.violations else 0)


if __name__ == "__main__":
    main()
