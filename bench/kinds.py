"""The bench's own kinds, loaded into its worker with
``OPERATIONS_KIND_MODULES=bench.kinds`` (never deployed).

``bench.stubborn`` ignores its cancel: it sleeps in short naps without looking
at ``ctx.cancelled``, so the worker ends it once the grace is over (the
forced-end overshoot figure).
"""

from __future__ import annotations

import time
from typing import Any

from lib.kinds import JobContext, Param, register


@register("bench.stubborn", params={"seconds": Param(float, default=10.0, minimum=0,
                                                     maximum=600)})
def stubborn(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    ends = time.monotonic() + params["seconds"]
    while time.monotonic() < ends:
        time.sleep(0.05)  # never ctx.sleep, never ctx.cancelled
    return {"slept": params["seconds"]}
