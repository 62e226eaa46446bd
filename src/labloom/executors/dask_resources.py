"""Whether a worker of the Dask cluster can ever run a task that asks for ``resources``
(``@task(resources={"GPU": 1})``): Dask itself would keep such a task waiting for good, so it
fails at once with what the workers do offer and how to start one that does.

What the workers offer is asked of the scheduler once and kept until the next run's first call
(workers come and go between runs); a task the kept answer refuses is asked about again before
it is refused. An adaptive cluster may still start a worker that offers it: never refused there
(the executor asks nothing then).
"""

from __future__ import annotations

from typing import Any


class ResourceOffers:
    """What each worker of one cluster offers, as last asked of its scheduler."""

    def __init__(self) -> None:
        self._offers: list[dict[str, float]] | None = None

    def forget(self) -> None:
        """Ask afresh at the next look (a new run: workers may have joined or left)."""
        self._offers = None

    def unsatisfiable(self, client: Any, resources: dict[str, float]) -> str:
        """Why no worker can ever run a task asking ``resources`` ('' when one can)."""
        offers: list[dict[str, float]] = self._offers or []
        for fresh in (False, True):
            if self._offers is None or fresh:
                info = client.scheduler_info(n_workers=-1)
                offers = self._offers = [w.get("resources") or {}
                                         for w in info["workers"].values()]
            if not offers:
                # No workers yet: they may still be starting, and may offer it. Not kept: an
                # empty look would answer every later call, after workers without it joined.
                self._offers = None
                return ""
            if any(all(o.get(k, 0) >= v for k, v in resources.items()) for o in offers):
                return ""
        offered = sorted({f"{k}={v:g}" for o in offers for k, v in o.items()})
        missing = sorted(
            k for k, v in resources.items() if not any(o.get(k, 0) >= v for o in offers)
        )
        wanted = " and ".join(f"{k}>={resources[k]:g}" for k in missing)
        return (
            f"asks for resources {resources}, but no worker of the Dask cluster offers "
            f"{wanted or 'all of them at once'}; "
            f"the {len(offers)} worker(s) offer: {', '.join(offered) or 'no resources'}. "
            "Start workers with --resources (e.g. 'dask worker ADDRESS --resources "
            f"\"{missing[0] if missing else 'GPU'}=1\"') or change the task's resources"
        )
