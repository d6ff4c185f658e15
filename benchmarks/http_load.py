"""GET /ping and POST /paint/start under 32 concurrent clients (wrk), server by server.

Compares, side by side in one run, on the embedded default storage:
  before   the code of a given git revision (default 472765d: embedded server in-process),
           served as its CLI did (uvicorn on asyncio and h11, access log on);
  uvicorn  this tree under `inspilot serve` settings: uvloop, httptools, access log off;
  granian  this tree under granian (ASGI, uvloop), for the choice the README records.
Needs Debian's `wrk`. Run: python benchmarks/http_load.py [--seconds 10] [--before REV]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.fakes_process import free_port  # noqa: E402 - after the path is set

START_LUA = """
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"username": "load%d"}', counter % 500)
  return wrk.format("POST", "/paint/start", {["Content-Type"] = "application/json"}, body)
end
"""

UVICORN = """
import sys, uvicorn
from entrypoints.container import build_container
from entrypoints.http.app import create_app
loop, http, access = sys.argv[2], sys.argv[3], sys.argv[4] == "1"
uvicorn.run(create_app(build_container()), host="127.0.0.1", port=int(sys.argv[1]),
            loop=loop, http=http, access_log=access, log_level="warning")
"""

GRANIAN = """
import sys
from granian import Granian
Granian("entrypoints.asgi:app_factory", factory=True, address="127.0.0.1",
        port=int(sys.argv[1]), interface="asgi", loop="uvloop", workers=1,
        log_access=False, log_level="warning").serve()
"""


def wrk(url: str, seconds: int, script: Path | None) -> float:
    command = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if errors:
        print(f"    ({errors.group(1)} non-2xx replies)")
    return float(match.group(1)) if match else 0.0


def serve(tree: Path, program: str, args: list[str], data_dir: str) -> subprocess.Popen[bytes]:
    port = args[0]
    env = {
        **os.environ,
        "PYTHONPATH": str(tree),
        "INSPILOT_DATA_DIR": data_dir,
        "INSPILOT_LOG_LEVEL": "warning",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", program, *args],
        cwd=tree,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).text == "pong":
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"server in {tree} did not start")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--before", default="472765d")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("needs wrk: apt-get install wrk")
        return 2
    work = Path(tempfile.mkdtemp(prefix="inspilot-http-"))
    before = work / "before"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(before), args.before],
        check=True,
    )
    script = work / "start.lua"
    script.write_text(START_LUA)
    configurations = [
        ("before", before, UVICORN, ["asyncio", "h11", "1"]),
        ("uvicorn", ROOT, UVICORN, ["auto", "auto", "0"]),
        ("granian", ROOT, GRANIAN, []),
    ]
    results: dict[str, tuple[float, float]] = {}
    try:
        for name, tree, program, extra in configurations:
            port = free_port()
            process = serve(tree, program, [str(port), *extra], str(work / f"data-{name}"))
            try:
                url = f"http://127.0.0.1:{port}"
                wrk(f"{url}/paint/start", 2, script)  # warm-up: sessions exist afterwards
                ping = wrk(f"{url}/ping", args.seconds, None)
                start = wrk(f"{url}/paint/start", args.seconds, script)
                results[name] = (ping, start)
                print(
                    f"{name:<8} GET /ping {ping:>7.0f} req/s  POST /paint/start {start:>7.0f} req/s"
                )
            finally:
                process.terminate()
                process.wait(timeout=30)
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False
        )
        shutil.rmtree(work, ignore_errors=True)
    base_ping, base_start = results["before"]
    for name in ("uvicorn", "granian"):
        ping, start = results[name]
        print(
            f"{name} / before: /ping x{ping / base_ping:.2f}, "
            f"/paint/start x{start / base_start:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
