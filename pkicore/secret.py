"""A value that must never be printed: PINs and passwords read from configuration."""
from __future__ import annotations


class Secret:
    """Holds a secret string; ``repr``/``str`` show only that it is set."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))
