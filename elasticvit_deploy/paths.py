"""Where the toolkit keeps caches, tables, predictors and results."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

HOME_ENV = "ELASTICVIT_DEPLOY_HOME"


def user_data_dir(create: bool = False) -> Path:
    """`$ELASTICVIT_DEPLOY_HOME` if set, otherwise the platform's user cache directory for elasticvit-deploy."""
    env = os.environ.get(HOME_ENV)
    path = Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("elasticvit-deploy"))
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path
