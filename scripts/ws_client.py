#!/usr/bin/env python3
"""Follow a Suanwang live stream with an institution API token (scope ``read``): docs/websockets.md.

    export SUANWANG_TOKEN=sw_xxxxxxxx_...
    python scripts/ws_client.py --url ws://127.0.0.1:8000/ws/institution/
    python scripts/ws_client.py --url 'wss://suanwang.example.cn/ws/jobs/?project=12' --json

Prints one line per change (or the raw messages with --json), keeps the state of every job it has
seen, and reconnects with ``resume`` after a network failure or a server restart. Needs only the
``websockets`` package (pip install websockets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys

import websockets

REFUSED = {4400, 4401, 4403}


class Follower:
    def __init__(self, url: str, token: str, raw: bool):
        self.url, self.token, self.raw = url, token, raw
        self.seqs: dict[str, int] = {}
        self.jobs: dict[int, dict] = {}

    def resume_url(self) -> str:
        if not self.seqs:
            return self.url
        resume = ",".join(f"{group}:{seq}" for group, seq in self.seqs.items())
        return self.url + ("&" if "?" in self.url else "?") + "resume=" + resume

    def apply(self, kind: str, fields: list[str], rows: list[list]) -> None:
        for row in rows:
            values = dict(zip(fields, row, strict=True))
            if kind == "jobs":
                job = self.jobs.setdefault(values["id"], {})
                job.update(values)  # partial rows update only the columns they carry
                if not self.raw:
                    print(f"job {job['id']:>8} {job.get('state', '?'):<10} {job.get('site') or '-':<10} "
                          f"{job.get('cause') or ''}")
            elif not self.raw:
                print(kind, values)

    def handle(self, message: dict) -> None:
        if self.raw:
            print(json.dumps(message, ensure_ascii=False))
        kind = message["type"]
        if kind == "snapshot":
            self.seqs = dict(message["seqs"])
            self.jobs.clear()
            jobs = message["data"].get("jobs")
            if jobs:
                self.apply("jobs", jobs["fields"], jobs["rows"])
            if not self.raw:
                print(f"snapshot ({message.get('reason', 'connect')}): {len(self.jobs)} jobs", file=sys.stderr)
        elif kind == "delta":
            self.seqs[message["group"]] = message["seq"]
            for event in message["events"]:
                self.apply(event["kind"], event["fields"], event["rows"])
        elif kind == "error":
            print(f"server: {message['code']}: {message['message']}", file=sys.stderr)

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with websockets.connect(self.resume_url(), max_size=None,
                                              additional_headers={"Authorization": f"Bearer {self.token}"}) as ws:
                    backoff = 0.5
                    async for raw in ws:
                        self.handle(json.loads(raw))
            except websockets.ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                if code in REFUSED:
                    raise SystemExit(f"refused by the server: close code {code}") from None
                print(f"connection closed ({code}); reconnecting", file=sys.stderr)
            except OSError as exc:
                print(f"cannot connect ({exc}); retrying", file=sys.stderr)
            await asyncio.sleep(backoff * (1 + random.random()))
            backoff = min(backoff * 2, 30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="ws://127.0.0.1:8000/ws/institution/")
    parser.add_argument("--token", default=os.environ.get("SUANWANG_TOKEN"), help="default: $SUANWANG_TOKEN")
    parser.add_argument("--json", action="store_true", help="print the raw messages")
    args = parser.parse_args()
    if not args.token:
        parser.error("give --token or set SUANWANG_TOKEN")
    try:
        asyncio.run(Follower(args.url, args.token, args.json).run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
