"""Whether a progress bar is drawn: one rule for every bar the package draws.

tqdm reads TQDM_DISABLE only for the arguments a caller leaves unset, and every bar here sets
`disable` (from --quiet, or a library function's `progress`), so the variable is read here.
"""

from __future__ import annotations

import os


def show_progress(progress: bool) -> bool:
    """`progress` (False: --quiet, or a caller that wants no bar) unless TQDM_DISABLE is set."""
    return progress and os.environ.get("TQDM_DISABLE", "").strip().lower() in ("", "0", "false", "no", "off")
