"""Memory: RSS of the service with its health monitor running under load, against the bare app.

- service: python -m tria_service against throwaway dependencies, the monitor refreshing every
  dependency in the background and serving readiness from its cache;
- bare: FastAPI serving fixed health bodies (benchmarks/_apps.py), no monitor, no clients, no
  components; it imports the service's app module, so both load the same code and the difference
  is what the running service holds, not its libraries.

Both get the same steady load at the same time for --seconds: --rate readiness requests per
second each. RSS (psutil) is sampled every second; the goal is less than 10 MB extra at the end.

Run: python -m benchmarks.memory [--seconds 60] [--rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import time

import psutil
from rich.console import Console

from benchmarks._apps import READINESS_PATH
from benchmarks._common import Row, console, http_load, local_dependencies, report, start_app
from pytest_tria_deploy.provision.processes import start_service

GOAL_MB = 10.0
CONCURRENCY = 8
MB = 1024 * 1024


async def loaded_rss(
    urls: dict[str, str], pids: dict[str, int], seconds: float, rate: float
) -> dict[str, list[float]]:
    """RSS in MB of each process, once a second while both get ``rate`` requests/s."""
    processes = {name: psutil.Process(pid) for name, pid in pids.items()}
    samples: dict[str, list[float]] = {name: [] for name in pids}

    async def sample() -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            for name, process in processes.items():
                samples[name].append(process.memory_info().rss / MB)
            await asyncio.sleep(1.0)
        for name, process in processes.items():
            samples[name].append(process.memory_info().rss / MB)

    await asyncio.gather(
        sample(), *(http_load(url, seconds, CONCURRENCY, rate) for url in urls.values())
    )
    return samples


def run(args: argparse.Namespace, out: Console) -> dict[str, list[float]]:
    with local_dependencies(out) as (stack, _, env):
        out.print("starting the service and the bare app ...")
        service = start_service(stack.workdir, env)
        bare = start_app(stack.workdir, "bare", env)
        try:
            urls = {"service": service.url + READINESS_PATH, "bare": bare.url + READINESS_PATH}
            pids = {"service": service.process.pid, "bare": bare.process.pid}
            out.print(f"{args.rate:g} readiness req/s to each for {args.seconds:g}s ...")
            return asyncio.run(loaded_rss(urls, pids, args.seconds, args.rate))
        finally:
            bare.stop()
            service.stop()


def comparisons(samples: dict[str, list[float]]) -> list[Row]:
    service, bare = samples["service"], samples["bare"]
    extra = service[-1] - bare[-1]
    return [
        Row(
            "RSS MB at the end: service vs bare",
            f"{service[-1]:.1f}",
            f"{bare[-1]:.1f}",
            service[-1] / bare[-1],
            f"< {GOAL_MB:g} MB extra (was {extra:.1f})",
            extra < GOAL_MB,
        ),
        Row(
            "RSS MB peak: service vs bare",
            f"{max(service):.1f}",
            f"{max(bare):.1f}",
            max(service) / max(bare),
        ),
        Row(
            "RSS MB growth under load: service vs bare",
            f"{service[-1] - service[0]:+.1f}",
            f"{bare[-1] - bare[0]:+.1f}",
            None,
        ),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the loaded run")
    parser.add_argument("--rate", type=float, default=100.0, help="readiness requests/s to each")
    args = parser.parse_args()
    if args.seconds <= 0 or args.rate <= 0:
        parser.error("--seconds and --rate must be positive")
    out = console()
    samples = run(args, out)
    return report(out, "Memory: service with monitor vs bare app", comparisons(samples))


if __name__ == "__main__":
    raise SystemExit(main())
