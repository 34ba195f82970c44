"""Argparse value types shared by every `s2mos` subcommand (one definition of each check)."""
from __future__ import annotations

import argparse
from typing import Callable


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse `type` accepting whole numbers ≥ `minimum`, with a one-line error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected ≥ {minimum}, got {value}")
        return value

    parse.__name__ = f"int≥{minimum}"
    return parse
