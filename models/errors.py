"""Errors of the models package (part of the tree rooted at ``ingest.errors.AigwError``)::

AigwError
└── ModelsError
    └── PriceFileError      a user price file is unreadable or invalid (names file, row, key)
"""

from __future__ import annotations

from ingest.errors import AigwError

__all__ = ["ModelsError", "PriceFileError"]


class ModelsError(AigwError):
    """A model could not be computed."""


class PriceFileError(ModelsError):
    """A user price file is unreadable or has an invalid entry."""

    def __init__(self, message: str, *, path: str, detail: str | None = None) -> None:
        super().__init__(message, detail=detail)
        self.path = path
