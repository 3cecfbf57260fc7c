"""An investigator's workstation for the network tests, run inside a namespace::

    ip netns exec NS python -m tests.system.net.investigator --url URL --token TOKEN --call-id ID

Waits (up to ``--timeout``) until the call's recording is signed (``state`` final), downloads it
whole and a byte range of it, asks the server to verify it, and prints one JSON line:
``{"event": "recording", "summary": ..., "sha256": ..., "size": ..., "range": ..., "verify": ...}``
(or ``{"event": "error", ...}``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
import time
from typing import Any

import aiohttp


async def fetch(args: argparse.Namespace) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {args.token}"}
    base = f"{args.url}/api/v1/recordings/{args.call_id}"
    deadline = time.monotonic() + args.timeout
    async with aiohttp.ClientSession(headers=headers) as http:
        while True:
            async with http.get(base) as response:
                summary: dict[str, Any] = await response.json() if response.ok else {}
            if summary.get("state") == "final":
                break
            if time.monotonic() > deadline:
                return {"event": "error", "error": f"not signed in {args.timeout}s", **summary}
            await asyncio.sleep(0.3)
        digest, size = hashlib.sha256(), 0
        async with http.get(f"{base}/media") as response:
            response.raise_for_status()
            async for chunk in response.content.iter_chunked(1 << 16):
                digest.update(chunk)
                size += len(chunk)
        async with http.get(f"{base}/media", headers={"Range": "bytes=4-99"}) as response:
            ranged = {"status": response.status, "length": len(await response.read())}
        async with http.post(f"{base}/verify") as response:
            verify = await response.json()
    return {
        "event": "recording",
        "summary": summary,
        "sha256": digest.hexdigest(),
        "size": size,
        "range": ranged,
        "verify": verify,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.system.net.investigator")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--call-id", required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    try:
        print(json.dumps(asyncio.run(fetch(args))), flush=True)
    except Exception as exc:
        print(json.dumps({"event": "error", "error": repr(exc)}), flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
