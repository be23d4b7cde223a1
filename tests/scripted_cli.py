"""The ``pdr`` command line with the scripted model registered as 'scripted' (test-only).

Run as ``python -m tests.scripted_cli ARGS...``. ``PDR_TEST_VICTIM=role,round,index`` makes that
call slow (0.5 s, so its siblings finish and are saved first) and then kills the process with
SIGKILL from inside the call, the way a crash or ``kill -9`` would stop a run mid-round.
``PDR_TEST_LOG`` is a file that gets one JSON line per finished call. ``PDR_TEST_MUTE=1`` makes
the first call point file descriptors 1 and 2 and ``sys.stdout``/``sys.stderr`` at /dev/null for
good, as two overlapping llama.cpp model loads in quiet mode can.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from pdr.cli import app
from pdr.models import register_model
from tests.scripted import Call, Script, ScriptedChatModel


def main() -> None:
    victim_text = os.environ.get("PDR_TEST_VICTIM")
    victim = None
    if victim_text:
        role, round_, index = victim_text.split(",")
        victim = (role, int(round_), int(index))

    def latency(call: Call) -> float:
        return 0.5 if (call.role, call.round, call.index) == victim else 0.0

    mute = os.environ.get("PDR_TEST_MUTE") == "1"

    def die(call: Call) -> None:
        if (call.role, call.round, call.index) == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        if mute and call.number == 0:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (left open on purpose)

    log = os.environ.get("PDR_TEST_LOG")
    script = Script(latency=latency, before_reply=die, log_path=Path(log) if log else None)
    register_model("scripted", ScriptedChatModel(script=script))
    app(prog_name="pdr")


if __name__ == "__main__":
    main()
