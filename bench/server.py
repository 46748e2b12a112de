"""A small HTTP/1.1 server for the throughput benchmarks, run by ``bench/run.py`` in a
process of its own so that serving does not compete with the measured clients for the
interpreter lock.

It listens on 127.0.0.1 only, on two ports it picks and prints on one line: an HTTP port
(every GET gets a short ``200``; ``Connection: close`` in the request is honoured;
``GET /stats`` returns ``{"connections": C, "requests": R}``, counting only connections
and requests for other paths) and a sink port that accepts and closes connections.
With ``--tls CERT_AND_KEY.pem --tls-port N`` it also serves the same over HTTPS on
port N (ALPN ``http/1.1``) of 127.0.0.1, or of each ``--tls-host``, counted in the same
stats, and prints N third. Every response goes out in one write, so that no response
waits on Nagle's algorithm for the client's delayed ACK. It exits when its standard
input closes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import sys

BODY = b"hello from the bench server\n"


async def main(tls: str | None, tls_port: int, tls_hosts: list[str]) -> None:
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
    servers = [http, sinks]
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls)
        context.set_alpn_protocols(["http/1.1"])
        servers.append(
            await asyncio.start_server(serve, tls_hosts, tls_port, backlog=1024, ssl=context)
        )
    print(*(server.sockets[0].getsockname()[1] for server in servers), flush=True)
    try:
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    finally:
        for server in servers:
            server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls", help="a PEM file with the certificate chain and its key")
    parser.add_argument("--tls-port", type=int, default=0)
    parser.add_argument("--tls-host", action="append", help="default: 127.0.0.1")
    args = parser.parse_args()
    asyncio.run(main(args.tls, args.tls_port, args.tls_host or ["127.0.0.1"]))
