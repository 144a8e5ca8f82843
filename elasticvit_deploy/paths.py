"""Where the toolkit keeps caches, tables, predictors and results."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from .errors import BadInput

HOME_ENV = "ELASTICVIT_DEPLOY_HOME"


class DataDirError(BadInput):
    """The user-data directory (or a directory in it) is not a usable directory: one line naming it."""


def user_data_dir(create: bool = False) -> Path:
    """`$ELASTICVIT_DEPLOY_HOME` if set, otherwise the platform's user cache directory for elasticvit-deploy;
    with `create`, made if missing and checked writable (DataDirError if it is not a directory or not writable)."""
    env = os.environ.get(HOME_ENV)
    path = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("elasticvit-deploy"))
    if path.exists() and not path.is_dir():
        where = f"{path} ({HOME_ENV})" if env else str(path)
        raise DataDirError(f"{where}: the data directory is a file, not a directory")
    return writable_dir(path) if create else path


def writable_dir(path: Path) -> Path:
    """`path`, created if missing; DataDirError naming it if it cannot be created or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataDirError(f"{path}: cannot create the directory ({e.strerror or e.__class__.__name__})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        why = "read-only file system" if os.statvfs(path).f_flag & os.ST_RDONLY else "permission denied"
        raise DataDirError(f"{path}: the directory is not writable ({why})")
    return path
