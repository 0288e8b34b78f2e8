"""Where costguard keeps its files: ``$COSTGUARD_HOME`` if set, else the platform's dirs."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """``$COSTGUARD_HOME/cache`` if set, else costguard's directory in the user cache dir."""
    home = os.environ.get("COSTGUARD_HOME")
    if home:
        return Path(home).expanduser() / "cache"
    import platformdirs  # deferred: only needed when no path was given

    return platformdirs.user_cache_path("costguard")
