"""The ``pdr`` command line with the scripted model registered as 'scripted' (test-only).

Run as ``python -m tests.scripted_cli ARGS...``. ``PDR_TEST_VICTIM=role,round,index`` makes that
call slow (0.5 s, so its siblings finish and are saved first) and then kills the process with
SIGKILL from inside the call, the way a crash or ``kill -9`` would stop a run mid-round.
``PDR_TEST_LOG`` is a file that gets one JSON line per finished call.
"""

from __future__ import annotations

import os
import signal
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

    def die(call: Call) -> None:
        if (call.role, call.round, call.index) == victim:
            os.kill(os.getpid(), signal.SIGKILL)

    log = os.environ.get("PDR_TEST_LOG")
    script = Script(latency=latency, before_reply=die, log_path=Path(log) if log else None)
    register_model("scripted", ScriptedChatModel(script=script))
    app(prog_name="pdr")


if __name__ == "__main__":
    main()
