"""``demo.countdown``: a job of N steps that honors cancellation between steps."""

from __future__ import annotations

from typing import Any

from google.api_core import exceptions

from lib.kinds import JobContext, Param, register


def _fail_at_within_steps(params: dict[str, Any]) -> str | None:
    fail_at = params.get("failAtStep")
    if fail_at is not None and fail_at > params["steps"]:
        return "Param 'failAtStep' must be at most 'steps'."
    return None


@register(
    "demo.countdown",
    params={
        "steps": Param(int, required=True, minimum=1, maximum=10000),
        "stepSeconds": Param(float, default=1.0, minimum=0, maximum=60),
        "failAtStep": Param(int, minimum=1),
    },
    check=_fail_at_within_steps,
)
def countdown(ctx: JobContext, params: dict[str, Any]) -> dict[str, Any]:
    """Runs ``steps`` steps of ``stepSeconds`` each, resuming from a checkpoint.

    Between steps it waits on the cancel event rather than sleeping, so a
    cancel cuts even a 60 s step short.
    """
    steps = params["steps"]
    for step in range(int(ctx.state.get("step", 0)) + 1, steps + 1):
        ctx.sleep(params["stepSeconds"])
        if step == params.get("failAtStep"):
            raise exceptions.FailedPrecondition(f"Step {step} failed, as failAtStep asked.")
        ctx.report_progress(100 * step // steps, f"Step {step} of {steps}.")
        ctx.checkpoint({"step": step})
    return {"steps": steps}
