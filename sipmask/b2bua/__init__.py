"""The masking B2BUA (issue 5): call control, masking policy and call records."""

from .engine import B2BUA, map_failure

__all__ = ["B2BUA", "map_failure"]
