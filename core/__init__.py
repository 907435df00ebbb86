"""The shared floor: what every stage may import (errors, settings, the Logpush format,
the warehouse schema). It imports no other aigw package."""

from core.errors import AigwError, ConfigError

__all__ = ["AigwError", "ConfigError"]
