"""Keep the converters' console noise (native logs, progress bars, import warnings) out of the user's terminal.

The converters and runtimes write to file descriptors 1 and 2 from C++ as well as from Python, so redirecting
`sys.stdout` is not enough: `native_output_captured` points both descriptors at a temporary file for the duration
of the block. If the block raises, the last lines of what was captured are attached to the exception as a note,
so a failure still explains itself. Set ``ELASTICVIT_DEPLOY_VERBOSE=1`` to see everything live.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

VERBOSE_ENV = "ELASTICVIT_DEPLOY_VERBOSE"

# litert-torch prints a rich progress tree for every conversion unless told not to.
os.environ.setdefault("LITERT_TORCH_SHOW_PROGRESS", "n")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").lower() in ("1", "true", "yes", "on")


@contextmanager
def native_output_captured() -> Iterator[None]:
    """Silence stdout/stderr at the file-descriptor level (and Python warnings) inside the block."""
    if _verbose():
        yield
        return
    sys.stdout.flush()
    sys.stderr.flush()
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryFile(mode="w+b") as log:
        saved = os.dup(1), os.dup(2)
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        root.setLevel(logging.ERROR)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except BaseException as e:
            sys.stdout.flush()
            sys.stderr.flush()
            log.seek(0)
            tail = [ln for ln in log.read().decode(errors="replace").splitlines() if ln.strip()][-5:]
            if tail:
                e.add_note("converter output (last lines):\n" + "\n".join(tail))
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            root.setLevel(level)
