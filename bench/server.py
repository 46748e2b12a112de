"""A small HTTP/1.1 server for the throughput benchmarks, run by ``bench/run.py`` in a
process of its own so that serving does not compete with the measured clients for the
interpreter lock.

It listens on 127.0.0.1 only, on two ports it picks and prints on one line: an HTTP port
(every GET gets a short ``200``; ``Connection: close`` in the request is honoured;
``GET /stats`` returns ``{"connections": C, "requests": R}``, counting only connections
and requests for other paths) and a sink port that accepts and closes connections. It
exits when its standard input closes.
"""

from __future__ import annotations

import asyncio
import json
import sys

BODY = b"hello from the bench server\n"


async def main() -> None:
    stats = {"connections": 0, "requests": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counted = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                parts = lines[0].split(" ")
                path = parts[1] if len(parts) > 1 else "/"
                close = any(
                    line.lower().startswith("connection:") and "close" in line.lower()
                    for line in lines[1:]
                )
                if path == "/stats":
                    body = json.dumps(stats).encode()
                else:
                    body = BODY
                    stats["requests"] += 1
                    if not counted:
                        counted = True
                        stats["connections"] += 1
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                    + f"Content-Length: {len(body)}\r\n".encode()
                    + (b"Connection: close\r\n" if close else b"")
                    + b"\r\n"
                    + body
                )
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    http = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=1024)
    sinks = await asyncio.start_server(sink, "127.0.0.1", 0, backlog=1024)
    print(http.sockets[0].getsockname()[1], sinks.sockets[0].getsockname()[1], flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        http.close()
        sinks.close()


if __name__ == "__main__":
    asyncio.run(main())
