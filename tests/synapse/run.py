"""Runs an unmodified Synapse until its stdin closes.

    python run.py -c homeserver.yaml

is `python -m synapse.app.homeserver -c homeserver.yaml` (the same module, run
in this process through runpy, with the same arguments) plus one daemon thread
that reads stdin and ends the process as soon as stdin reaches end of file.
tests/support/synapse.rs holds the write end of that pipe, so when the test
process ends, however it ends (even SIGKILL), the pipe closes and Synapse goes
with it. Synapse itself never reads stdin.

prctl(PR_SET_PDEATHSIG) would not do: it fires when the *thread* that spawned
the child exits, and a Rust test's thread is not the test process.
"""

import os
import runpy
import sys
import threading


def _exit_when_stdin_closes() -> None:
    try:
        while os.read(0, 4096):
            pass
    finally:
        # No shutdown: the test's temporary directory goes with it.
        os._exit(0)


threading.Thread(target=_exit_when_stdin_closes, name="stdin-watch", daemon=True).start()
sys.argv = ["synapse.app.homeserver", *sys.argv[1:]]
runpy.run_module("synapse.app.homeserver", run_name="__main__", alter_sys=True)
