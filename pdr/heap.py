"""Keep Python's full garbage collections short in a process that has imported pdr's stack.

After LangGraph, LangChain, the openai SDK and SQLAlchemy are imported a process holds about
200,000 objects that the cyclic garbage collector tracks. A full (generation 2) collection walks
all of them and stops every thread and coroutine while it does: 0.13-0.31 s each on this
project's 2-core machines under load, and one comes about every second M = 64 round, since a
round's replies live long enough to be promoted. A collection that lands while a round's calls are
being started spreads their start by that much (this was the "random_k anomaly": 2.8 s instead
of 1.5 s for PDR [64, 1] in 5 of 10 repeats). ``gc.freeze()`` moves every object alive at that
moment to a permanent generation that collections skip; done once after the imports, full
collections took 1-16 ms instead.

The command line calls ``freeze_imports()`` before it starts a run; a long-lived program of your
own can call it once after its imports (and after building its graphs).
"""

from __future__ import annotations

import gc


def freeze_imports() -> int:
    """Exclude every object alive now from future garbage collections; returns how many.

    Call it after the imports (module objects live as long as the process anyway). Objects that
    become garbage later among the frozen ones are not freed: freeze once, not per run.
    """
    gc.freeze()
    return gc.get_freeze_count()
