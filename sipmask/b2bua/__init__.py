"""The masking B2BUA (issue 5): call control, masking policy and call records."""

from .core import map_failure
from .shell import B2BUA

__all__ = ["B2BUA", "map_failure"]
