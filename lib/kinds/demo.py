"""The demo kinds: ``demo.countdown`` (honors cancellation between steps, or
ignores it with ``ignoreCancel``) and ``demo.atomic`` (not cancellable)."""

from __future__ import annotations

import time
from typing import Any

from google.api_core import exceptions

from lib.kinds import JobContext, Param, register

_STEPS = Param(int, required=True, minimum=1, maximum=10000)
_STEP_SECONDS = Param(float, default=1.0, minimum=0, maximum=60)


def _fail_at_within_steps(params: dict[str, Any]) -> str | None:
    fail_at = params.get("failAtStep")
    if fail_at is not None and fail_at > params["steps"]:
        return "Param 'failAtStep' must be at most 'steps'."
    return None


@register(
    "demo.countdown",
    params={
        "steps": _STEPS,
        "stepSeconds": _STEP_SECONDS,
        "failAtStep": Param(int, minimum=1),
        "ignoreCancel": Param(bool, default=False),
    },
    check=_fail_at_within_steps,
)
def countdown(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Runs ``steps`` steps of ``stepSeconds`` each, resuming from a checkpoint.

    Between steps it waits on the cancel event rather than sleeping, so a
    cancel cuts even a 60 s step short. With ``ignoreCancel`` it sleeps
    instead and never looks at the cancel: a stubborn handler, which the
    worker ends by force once the cancel's grace has passed.
    """
    steps = params["steps"]
    stubborn = bool(params.get("ignoreCancel"))
    for step in range(int(ctx.state.get("step", 0)) + 1, steps + 1):
        if stubborn:
            time.sleep(params["stepSeconds"])
        else:
            ctx.sleep(params["stepSeconds"])
        if step == params.get("failAtStep"):
            raise exceptions.FailedPrecondition(f"Step {step} failed, as failAtStep asked.")
        ctx.report_progress(100 * step // steps, f"Step {step} of {steps}.")
        ctx.checkpoint({"step": step})
    return {"steps": steps}


@register("demo.atomic", params={"steps": _STEPS, "stepSeconds": _STEP_SECONDS},
          cancellable=False)
def atomic(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Runs ``steps`` steps of ``stepSeconds`` each as one unit of work that
    may not be cut short: its kind is not cancellable, and it never looks at
    cancellation."""
    steps = params["steps"]
    for step in range(1, steps + 1):
        time.sleep(params["stepSeconds"])
        ctx.report_progress(100 * step // steps, f"Step {step} of {steps}.")
    return {"steps": steps}
