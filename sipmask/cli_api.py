"""`sipmask session ...` and `sipmask pool ...`: the provisioning API from the command line
(issue 4). Each command sets `args.api_command` to the function that runs it."""

from __future__ import annotations

from typing import Any


def add_api_commands(sub: Any) -> None:
    """Register the API commands on the `sipmask` subparsers (`sub`)."""
    del sub  # filled in by the CLI work of issue 4
