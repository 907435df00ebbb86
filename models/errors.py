"""The models branch of aigw's error tree (drawn whole in ``core.errors``)."""

from core.errors import InvoiceFileError, ModelsError, PriceFileError

__all__ = ["InvoiceFileError", "ModelsError", "PriceFileError"]
