"""Choices of command-line arguments read from the registries when first needed.

``LazyChoices(available_teachers)`` is an argparse ``choices=`` value that calls its source only
when a value is checked or a sub-command's help is printed, so building the parser (``pmsplat
--help``) imports no registry. Give the argument a ``metavar`` (argparse otherwise lists the
choices when the argument is added)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence


class LazyChoices(Sequence):
    def __init__(self, source: Callable[[], Iterable[str]]) -> None:
        self._source = source
        self._names: list[str] | None = None

    def _get(self) -> list[str]:
        if self._names is None:
            self._names = list(self._source())
        return self._names

    def __getitem__(self, index):
        return self._get()[index]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[str]:
        return iter(self._get())

    def __contains__(self, value: object) -> bool:
        return value in self._get()

    def __repr__(self) -> str:
        return repr(self._get())
