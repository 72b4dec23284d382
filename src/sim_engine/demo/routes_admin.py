"""Admin routes of the demo social API: read and replace the injected faults at run time.

``/admin/*`` is never faulted (see :data:`sim_engine.demo.faults.DEFAULT_EXEMPT_PATHS`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from sim_engine.demo.faults import FaultConfig, FaultController
from sim_engine.demo.schemas import FaultCountsOut

__all__ = ["admin_router", "get_faults_controller"]

admin_router = APIRouter(prefix="/admin", tags=["admin"])


async def get_faults_controller(request: Request) -> FaultController:
    """Dependency: the app's :class:`FaultController`."""
    controller: FaultController = request.app.state.faults
    return controller


FaultsDep = Annotated[FaultController, Depends(get_faults_controller)]


@admin_router.get("/faults")
async def get_faults(faults: FaultsDep) -> FaultConfig:
    """The fault config in force."""
    return faults.config


@admin_router.put("/faults")
async def put_faults(config: FaultConfig, faults: FaultsDep) -> FaultConfig:
    """Replace the fault config (reseeds the fault generators and restarts burst timing)."""
    return faults.set(config)


@admin_router.delete("/faults")
async def delete_faults(faults: FaultsDep) -> FaultConfig:
    """Turn every fault off; returns the (empty) config now in force."""
    return faults.set(None)


@admin_router.get("/faults/stats")
async def fault_stats(faults: FaultsDep) -> FaultCountsOut:
    """How many faultable requests were passed, dropped, rate limited or failed."""
    c = faults.counts
    return FaultCountsOut(
        requests=c["requests"],
        passed=c["pass"],
        drop=c["drop"],
        rate_limit=c["rate_limit"],
        error=c["error"],
    )
