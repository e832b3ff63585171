"""`python -m loravault.server`, killed (SIGKILL) by itself at one step of the erasure commit path; tests only.

    python tests/integration/crashing_server.py after-blob serve --data DIR --port 0 --base tiny

The first argument names the step, one of STEPS; the rest goes to the real `loravault.server.main.main()`.
The production package holds no crash hook: this launcher wraps the commit step the erasure pipeline calls
(`loravault.server.erasure.pipeline.commit`) and hands it a vault and an audit log that kill the process right
after the named call returns, so the kill lands exactly where a power cut could:

- before-blob: before the merged blob is written
- after-blob: the blob staged and fsynced (`vault.adapters.stage_blob`), before the transaction
- in-transaction: the audit entry appended inside the vault transaction (`audit.append`), before it commits
- after-commit: the transaction committed (`vault.adapters.erasure_commit`), before the receipt goes out
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

STEPS = ("before-blob", "after-blob", "in-transaction", "after-commit")
# step -> the collaborator of commit() and its method after whose return the process dies
KILL_AFTER = {"after-blob": ("vault.adapters", "stage_blob"), "in-transaction": ("audit", "append"),
              "after-commit": ("vault.adapters", "erasure_commit")}


def _kill() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class _KillAfter:
    """`target` itself, except that calling its method `method` kills the process once the call returns."""

    def __init__(self, target: Any, method: str | None) -> None:
        self._target, self._method = target, method

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name != self._method:
            return value

        def then_kill(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            _kill()
            return result

        return then_kill


class _WithAdapters:
    """The vault, its adapter store wrapped."""

    def __init__(self, vault: Any, adapters: Any) -> None:
        self._vault, self.adapters = vault, adapters

    def __getattr__(self, name: str) -> Any:
        return getattr(self._vault, name)


def arm(step: str) -> None:
    """Make the erasure pipeline's commit step kill the process at `step`."""
    from loravault.server.erasure import pipeline

    real_commit = pipeline.commit

    def crashing_commit(verified: Any, merged: Any, *, vault: Any, audit: Any, **kwargs: Any) -> Any:
        if step == "before-blob":
            _kill()
        where, method = KILL_AFTER.get(step, ("", None))
        adapters = _KillAfter(vault.adapters, method if where == "vault.adapters" else None)
        return real_commit(verified, merged, vault=_WithAdapters(vault, adapters),
                           audit=_KillAfter(audit, method if where == "audit" else None), **kwargs)

    pipeline.commit = crashing_commit


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in STEPS:
        sys.exit(f"usage: crashing_server.py STEP serve ...; STEP is one of {', '.join(STEPS)}")
    arm(sys.argv[1])
    from loravault.server.main import main

    sys.exit(main(sys.argv[2:]))
