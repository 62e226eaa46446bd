"""`labloom` subcommands: limits (filled in by its issue)."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add this module's subcommands to the parser."""
    del subparsers


def _unused(args: argparse.Namespace) -> int:
    return 0
