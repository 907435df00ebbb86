"""The models branch of aigw's error tree (drawn whole in ``core.errors``)."""

from core.errors import ModelsError, PriceFileError

__all__ = ["ModelsError", "PriceFileError"]
