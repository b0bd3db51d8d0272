"""Does `iecast serve` keep answering beside connections that never finish their headers (slowloris)?

Runs the web app in a child process on a free loopback port (a stand-in model that returns the
photo, so only the HTTP side is measured), then from this process:

1. times `GET /api/health` alone (baseline);
2. opens `--connections` connections (default 200) that send the start of a request and stop,
   and times health beside them;
3. waits for the server to close them itself (its header timeout), and times health again;
4. opens them again, closes them from this side, and times health right after;
5. opens `--flood` connections (default 1000, past the server's connection cap) and times health.

    .venv/bin/python benchmarks/serve_slowloris.py
    .venv/bin/python benchmarks/serve_slowloris.py --legacy   # uvicorn as `iecast serve` ran it before

`--legacy` serves with plain uvicorn and `limit_concurrency=64, timeout_keep_alive=5`, the settings
`iecast serve` used before the connection guards. Loopback only; every wait is bounded.
"""
from __future__ import annotations

import argparse
import http.client
import multiprocessing
import resource
import select
import socket
import statistics
import time

PARTIAL = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


class EchoStylizer:
    def stylize(self, content, style, alpha=1.0):
        return content


def run_server(port_pipe, legacy: bool, header_timeout: float, max_connections: int) -> None:
    """Child process: serve the app on a free loopback port; send the port back."""
    import uvicorn

    from iecast.serve.app import create_app
    from iecast.serve.config import ServeConfig
    from iecast.serve.limits import bind_socket, make_server

    config = ServeConfig(header_timeout_s=header_timeout, max_connections=max_connections)
    app = create_app(EchoStylizer(), config)
    sock = bind_socket("127.0.0.1", 0)
    if legacy:
        server = uvicorn.Server(uvicorn.Config(app, limit_concurrency=64, timeout_keep_alive=5, log_level="error"))
    else:
        server = make_server(app, config, log_level="error")
    port_pipe.send(sock.getsockname()[1])
    server.run(sockets=[sock])


def health(port: int, samples: int) -> dict:
    """`samples` GETs of /api/health, each on a fresh connection: status counts and latency in ms."""
    times, statuses = [], {}
    for _ in range(samples):
        start = time.perf_counter()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/health")
            status = conn.getresponse().status
            conn.close()
        except OSError as exc:
            status = type(exc).__name__
        times.append((time.perf_counter() - start) * 1000)
        statuses[status] = statuses.get(status, 0) + 1
    return {"statuses": statuses, "median_ms": statistics.median(times), "max_ms": max(times)}


def open_half_open(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(PARTIAL)
        except OSError:
            break
        sockets.append(sock)
    return sockets


def closed_count(sockets: list[socket.socket], wait: float = 0.0) -> int:
    """How many of `sockets` the server has closed (readable and then EOF or reset), after `wait` s."""
    closed = 0
    readable, _, _ = select.select(sockets, [], [], wait) if sockets else ([], [], [])
    for sock in readable:
        try:
            sock.setblocking(False)
            while True:
                data = sock.recv(4096)
                if not data:
                    closed += 1
                    break
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed


def wait_until_closed(sockets: list[socket.socket], limit: float) -> tuple[int, float]:
    """(connections closed by the server, seconds until the last of them closed), waiting at most `limit` s."""
    start = time.monotonic()
    pending, closed, last = list(sockets), 0, 0.0
    while pending and time.monotonic() - start < limit:
        readable, _, _ = select.select(pending, [], [], 0.5)
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                pending.remove(sock)
                closed += 1
                last = time.monotonic() - start
    return closed, last


def show(label: str, result: dict) -> None:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(result["statuses"].items(), key=str))
    print(f"  {label:<52} {result['median_ms']:8.1f} {result['max_ms']:8.1f}   {statuses}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=200, help="half-open connections (default 200)")
    parser.add_argument("--flood", type=int, default=1000, help="half-open connections past the cap (default 1000)")
    parser.add_argument("--samples", type=int, default=20, help="health requests per measurement (default 20)")
    parser.add_argument("--header-timeout", type=float, default=10.0, help="the server's header timeout, s (default 10)")
    parser.add_argument("--max-connections", type=int, default=256, help="the server's connection cap (default 256)")
    parser.add_argument("--legacy", action="store_true", help="plain uvicorn, limit_concurrency=64 (the old settings)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.flood + args.connections + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))

    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=run_server, args=(sender, args.legacy, args.header_timeout, args.max_connections),
                            daemon=True)
    child.start()
    try:
        if not receiver.poll(120):
            raise SystemExit("the server did not start within 120 s")
        port = receiver.recv()
        deadline = time.monotonic() + 60
        while health(port, 1)["statuses"].get(200) != 1:
            if time.monotonic() > deadline:
                raise SystemExit("the server does not answer /api/health")
            time.sleep(0.2)
        mode = "legacy: uvicorn limit_concurrency=64" if args.legacy else \
            f"guarded: header timeout {args.header_timeout:g} s, max {args.max_connections} connections"
        print(f"iecast serve slowloris benchmark ({mode}); /api/health latency in ms over {args.samples} requests")
        print(f"  {'situation':<52} {'median':>8} {'max':>8}   statuses")
        show("alone", health(port, args.samples))

        sockets = open_half_open(port, args.connections)
        show(f"beside {len(sockets)} half-open connections", health(port, args.samples))
        limit = args.header_timeout + 5
        closed, last = wait_until_closed(sockets, limit)
        print(f"  the server closed {closed} of {len(sockets)} half-open connections"
              + (f", the last after {last:.1f} s" if closed else f" within {limit:g} s"), flush=True)
        show("after the server closed them" if closed == len(sockets) else "while they are still open",
             health(port, args.samples))
        for sock in sockets:
            sock.close()

        sockets = open_half_open(port, args.connections)
        show(f"beside {len(sockets)} new half-open connections", health(port, args.samples))
        for sock in sockets:
            sock.close()
        time.sleep(0.2)
        show("right after this side closed them", health(port, args.samples))

        sockets = open_half_open(port, args.flood)
        time.sleep(0.5)
        result = health(port, args.samples)
        evicted = closed_count(sockets, wait=0.5)
        show(f"beside a flood of {len(sockets)} half-open connections", result)
        print(f"  of the flood, the server closed {evicted} to stay under its cap", flush=True)
        for sock in sockets:
            sock.close()
        time.sleep(0.2)
        show("after the flood closed", health(port, args.samples))
    finally:
        child.terminate()
        child.join(10)


if __name__ == "__main__":
    main()
