"""A study's load on `inspilot serve` in its own process: rounds of concurrent rapid divergence.

Twelve participants ask rapid divergence (num 6) at once, three rounds in a row; six
fake SD instances render real-size 1024 × 576 PNGs (1.77 MB) in IMAGE_S each, the fake
text model answers in TEXT_S. The bound of a round is the text chain plus the image
rounds: 3 × 0.3 + (12 × 6 / 6) × 1.0 = 12.9 s. Prints each round's wall time beside
the bound and the peak RSS of the service plus its child processes (the embedded
database), then how long SIGTERM took. Target: wall ≤ 1.05 × bound, RSS ≤ 600 MB.
Run: python benchmarks/load.py [--storage embedded|memory] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp

from benchmarks.fakes_process import model_fakes, served_inspilot
from benchmarks.study_data import STUDY_IMAGES, study_directory

INSTANCES = 6
PARTICIPANTS = 12
NUM = 6
TEXT_CHAIN = 3


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MB."""
    return sum(tree_rss_by_role(pid).values())


def _role(pid: int, root: int) -> str:
    if pid == root:
        return "server main"
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "other"
    return "database" if b"embedded_mongo_child" in command else "app worker"


def tree_rss_by_role(pid: int) -> dict[str, float]:
    """Resident memory (MB) of a process tree by role: server main, app worker, database."""
    totals: dict[str, float] = {}
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            rss = int(status.split("VmRSS:")[1].split()[0]) / 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                children = (task / "children").read_text().split()
                stack.extend(int(child) for child in children)
        except (OSError, IndexError, ValueError):
            continue
        role = _role(current, pid)
        totals[role] = totals.get(role, 0.0) + rss
    return totals


class RssSampler:
    def __init__(self, pid: int) -> None:
        self._pid = pid
        self.peak = 0.0
        self.by_role: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            roles = tree_rss_by_role(self._pid)
            total = sum(roles.values())
            if total > self.peak:
                self.peak, self.by_role = total, roles

    def reset(self) -> None:
        self.by_role = tree_rss_by_role(self._pid)
        self.peak = sum(self.by_role.values())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


async def one_round(
    client: aiohttp.ClientSession, url: str, round_no: int, participants: int = PARTICIPANTS
) -> float:
    """Browsers read replies fast: aiohttp stands in for them (httpx would spend about a
    second of the two cores per round reading 12 × 14 MB, charged to the service)."""

    async def participant(n: int) -> None:
        body = {
            "appid": 0,
            "type": 0,
            "prompts": {"task": f"第{round_no}轮 为独居老人设计厨房用品 {n}", "num": NUM},
        }
        async with client.post(f"{url}/generate", json=body) as response:
            status, data = response.status, json.loads(await response.read())
        assert status == 200, data.get("message")
        images = [item["items"][0]["image"] for item in data["data"]["result"]]
        assert len(images) == NUM and all(len(image) * 3 // 4 >= 1_500_000 for image in images)

    started = time.perf_counter()
    await asyncio.gather(*(participant(n) for n in range(participants)))
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--storage", choices=["embedded", "memory"], default="embedded")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--text-s", type=float, default=0.3)
    parser.add_argument("--image-s", type=float, default=1.0)
    parser.add_argument(
        "--prefill",
        type=int,
        default=STUDY_IMAGES,
        help="real-size pictures already in the database before measuring (0: empty)",
    )
    args = parser.parse_args()
    bound = TEXT_CHAIN * args.text_s + PARTICIPANTS * NUM / INSTANCES * args.image_s
    with (
        model_fakes(INSTANCES, args.text_s, args.image_s) as (openai_url, sd_urls),
        study_directory("inspilot-load-", args.prefill, args.storage) as data_dir,
        served_inspilot(openai_url, sd_urls, args.storage, data_dir) as (url, service),
    ):
        sampler = RssSampler(service.pid)
        print(
            f"{PARTICIPANTS} x rapid divergence (num {NUM}), {INSTANCES} SD instances at "
            f"{args.image_s:.1f} s (real-size PNGs), text {args.text_s:.1f} s, "
            f"{args.storage} storage; bound {bound:.1f} s\n"
        )
        print(f"{'round':>5} {'wall s':>8} {'ratio':>7} {'peak RSS MB':>12}")
        worst_ratio, worst_rss = 0.0, 0.0
        for round_no in range(1, args.rounds + 1):
            sampler.reset()

            async def run(round_no: int = round_no) -> float:
                timeout = aiohttp.ClientTimeout(total=300)
                async with aiohttp.ClientSession(timeout=timeout) as client:
                    return await one_round(client, url, round_no)

            wall = asyncio.run(run())
            ratio = wall / bound
            worst_ratio, worst_rss = max(worst_ratio, ratio), max(worst_rss, sampler.peak)
            roles = ", ".join(f"{k} {v:.0f}" for k, v in sorted(sampler.by_role.items()))
            print(f"{round_no:>5} {wall:>8.2f} {ratio:>7.3f} {sampler.peak:>12.0f}   ({roles})")
        sampler.stop()
        began = time.perf_counter()
        service.send_signal(signal.SIGTERM)
        service.wait(timeout=60)
        print(f"\nSIGTERM to exit: {time.perf_counter() - began:.2f} s")
        met = worst_ratio <= 1.05 and worst_rss <= 600
        print(
            f"worst wall / bound {worst_ratio:.3f} (target <= 1.05), peak RSS "
            f"{worst_rss:.0f} MB (target <= 600): {'met' if met else 'MISSED'}"
        )
        return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
