#!/usr/bin/env python3
"""Traffic of the fleet lab: the server's echo service, and the client's load.

    traffic.py echo-server PORT       TCP and UDP echo on [::]:PORT (dual stack), asyncio
    traffic.py load                   the client's load generator, driven by JSON lines on
                                      standard input (one answer line per command)

The load keeps, at once:
  - a pool of long-lived TCP connections to the echo service, each sending one byte every
    `interval` (100 ms) and reading it back: "established, idle but kept alive". Per
    connection: bytes echoed, the time of the last echo, every gap between two echoes
    longer than `gap` (start and end, epoch seconds) and the error that ended it (reset,
    closed, timeout), if any;
  - UDP flows to the echo service, one datagram every 10 ms each: the gaps of each flow
    measure how long the path was broken (re-convergence), to about 10 ms;
  - short TCP connections (HTTP/1.0 GET to the server's http.server, one request per
    connection) at a steady rate from a few threads, or as one batch: each result has
    its local port, so the test finds the connection in the firewalls' conntrack.

Commands ({"op": ...}):
  pool   {addr, port, n, interval=0.1, gap=0.35}      -> {"opened": [lport...], "failed": [...]}
  udp    {addr, port, n, interval=0.01, gap=0.05}     -> {"ports": [lport...]}
  short  {addr, port, rate, threads=4}                -> {"started": true}
  short_stop                                          -> {"short": [[t, lport, ok, error, seconds], ...]}
  batch  {addr, port, n, parallel=8}                  -> {"short": [...]}   (short connections, now)
  report                                              -> {"now", "tcp": [...], "udp": [...]}
  mark                                                -> forgets the gaps recorded so far
  close                                               -> closes everything, then exits
"""
import asyncio
import json
import selectors
import socket
import sys
import threading
import time


# ---- The server: TCP and UDP echo ----------------------------------------------------

async def _echo_conn(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        try:
            writer.close()
        except OSError:
            pass


class _UdpEcho(asyncio.DatagramProtocol):
    def connection_made(self, transport):
        self.t = transport

    def datagram_received(self, data, addr):
        self.t.sendto(data, addr)


async def echo_server(port):
    tcp = socket.create_server(("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=1024)
    server = await asyncio.start_server(_echo_conn, sock=tcp)
    udp = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    udp.bind(("::", port))
    await asyncio.get_running_loop().create_datagram_endpoint(_UdpEcho, sock=udp)
    async with server:
        await server.serve_forever()


# ---- The client's load ---------------------------------------------------------------

def _family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


class Load:
    def __init__(self):
        self.lock = threading.Lock()
        self.sel = selectors.DefaultSelector()
        self.tcp = []     # dicts, see pool()
        self.udp = []
        self.short = []   # [t, lport, ok, error, seconds]
        self.short_stop = threading.Event()
        self.short_threads = []
        self.closing = False
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    # The pool of long-lived TCP connections.
    def pool(self, addr, port, n, interval=0.1, gap=0.35):
        opened, failed = [], []
        start = time.time()
        for i in range(n):
            try:
                s = socket.create_connection((addr, port), timeout=3)
            except OSError as e:
                failed.append(str(e))
                continue
            s.setblocking(False)
            now = time.time()
            c = {"sock": s, "addr": addr, "lport": s.getsockname()[1], "interval": interval, "gap": gap,
                 # staggered: the sends of the pool spread over the interval
                 "next": now + interval * (i % 10) / 10, "sent": 0, "rcvd": 0, "opened": now,
                 "last_rx": now, "gaps": [], "err": None, "err_at": None}
            with self.lock:
                self.tcp.append(c)
                self.sel.register(s, selectors.EVENT_READ, ("tcp", c))
            opened.append(c["lport"])
        self.poke()
        return {"opened": opened, "failed": failed, "seconds": round(time.time() - start, 3)}

    # UDP flows, one datagram per interval each.
    def udp_flows(self, addr, port, n, interval=0.01, gap=0.05):
        ports = []
        for i in range(n):
            s = socket.socket(_family(addr), socket.SOCK_DGRAM)
            s.bind(("", 0))
            s.connect((addr, port))
            s.setblocking(False)
            now = time.time()
            f = {"sock": s, "addr": addr, "lport": s.getsockname()[1], "interval": interval, "gap": gap,
                 "next": now + interval * i / n, "seq": 0, "sent": 0, "rcvd": 0, "last_rx": None, "gaps": []}
            with self.lock:
                self.udp.append(f)
                self.sel.register(s, selectors.EVENT_READ, ("udp", f))
            ports.append(f["lport"])
        self.poke()
        return {"ports": ports}

    def poke(self):
        try:
            self.wake_w.send(b"x")
        except OSError:
            pass

    def _fail(self, c, err, now):
        if c["err"] is None:
            c["err"], c["err_at"] = err, now
        try:
            self.sel.unregister(c["sock"])
        except (KeyError, ValueError):
            pass
        try:
            c["sock"].close()
        except OSError:
            pass

    def loop(self):
        while not self.closing:
            now = time.time()
            nxt = now + 0.05
            with self.lock:
                for c in self.tcp:
                    if c["err"] is None and c["next"] <= now:
                        try:
                            c["sock"].send(b"k")
                            c["sent"] += 1
                        except BlockingIOError:
                            pass
                        except OSError as e:
                            self._fail(c, f"send: {e.__class__.__name__}: {e}", now)
                        c["next"] += c["interval"]
                        if c["next"] < now:
                            c["next"] = now + c["interval"]
                    if c["err"] is None:
                        nxt = min(nxt, c["next"])
                for f in self.udp:
                    if f["next"] <= now:
                        f["seq"] += 1
                        try:
                            f["sock"].send(b"%d %.6f" % (f["seq"], now))
                            f["sent"] += 1
                        except OSError:
                            pass   # ICMP errors of earlier datagrams, a full buffer: the gap shows it
                        f["next"] += f["interval"]
                        if f["next"] < now:
                            f["next"] = now + f["interval"]
                    nxt = min(nxt, f["next"])
            timeout = max(0.0, nxt - time.time())
            for key, _ in self.sel.select(timeout):
                kind, o = key.data
                now = time.time()
                with self.lock:
                    if kind == "wake":
                        try:
                            self.wake_r.recv(4096)
                        except OSError:
                            pass
                    elif kind == "tcp":
                        try:
                            d = o["sock"].recv(4096)
                        except BlockingIOError:
                            continue
                        except OSError as e:
                            self._fail(o, f"recv: {e.__class__.__name__}: {e}", now)
                            continue
                        if not d:
                            self._fail(o, "closed by the peer", now)
                            continue
                        if now - o["last_rx"] > o["gap"]:
                            o["gaps"].append([o["last_rx"], now])
                        o["rcvd"] += len(d)
                        o["last_rx"] = now
                    elif kind == "udp":
                        while True:
                            try:
                                d = o["sock"].recv(2048)
                            except BlockingIOError:
                                break
                            except OSError:
                                break   # an ICMP error (port unreachable from a dead instance)
                            if o["last_rx"] is not None and now - o["last_rx"] > o["gap"]:
                                o["gaps"].append([o["last_rx"], now])
                            o["rcvd"] += 1
                            o["last_rx"] = now

    # Short connections: one HTTP/1.0 request each.
    def one_short(self, addr, port, timeout=5.0):
        t0 = time.time()
        lport, ok, err = 0, False, None
        try:
            s = socket.socket(_family(addr), socket.SOCK_STREAM)
            s.settimeout(timeout)
            try:
                s.bind(("", 0))
                lport = s.getsockname()[1]
                s.connect((addr, port))
                s.sendall(b"GET / HTTP/1.0\r\nHost: fleet\r\n\r\n")
                data = b""
                while True:
                    d = s.recv(65536)
                    if not d:
                        break
                    data += d
                ok = data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200")
                if not ok:
                    err = f"answer: {data[:40]!r}"
            finally:
                s.close()
        except OSError as e:
            err = f"{e.__class__.__name__}: {e}"
        return [round(t0, 6), lport, ok, err, round(time.time() - t0, 4)]

    def short_start(self, addr, port, rate, threads=4):
        self.short_stop.clear()
        period = threads / float(rate)

        def worker(k):
            nxt = time.time() + period * k / threads
            while not self.short_stop.is_set():
                delay = nxt - time.time()
                if delay > 0 and self.short_stop.wait(delay):
                    break
                r = self.one_short(addr, port)
                with self.lock:
                    self.short.append(r)
                nxt = max(nxt + period, time.time())
        self.short_threads = [threading.Thread(target=worker, args=(k,), daemon=True) for k in range(threads)]
        for t in self.short_threads:
            t.start()
        return {"started": True}

    def short_end(self):
        self.short_stop.set()
        for t in self.short_threads:
            t.join(10)
        with self.lock:
            out, self.short = self.short, []
        return {"short": out}

    def batch(self, addr, port, n, parallel=8):
        out = []
        lock = threading.Lock()
        todo = list(range(n))

        def worker():
            while True:
                with lock:
                    if not todo:
                        return
                    todo.pop()
                r = self.one_short(addr, port)
                with lock:
                    out.append(r)
        ts = [threading.Thread(target=worker, daemon=True) for _ in range(parallel)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        return {"short": sorted(out)}

    def report(self):
        now = time.time()
        with self.lock:
            tcp = [{"lport": c["lport"], "addr": c["addr"], "sent": c["sent"], "rcvd": c["rcvd"], "last_rx": c["last_rx"],
                    "gaps": c["gaps"] + ([[c["last_rx"], None]] if c["err"] is None and now - c["last_rx"] > c["gap"] else []),
                    "err": c["err"], "err_at": c["err_at"],
                    "alive": c["err"] is None and now - c["last_rx"] <= max(1.0, 3 * c["gap"])} for c in self.tcp]
            udp = [{"lport": f["lport"], "addr": f["addr"], "sent": f["sent"], "rcvd": f["rcvd"], "last_rx": f["last_rx"],
                    "gaps": f["gaps"] + ([[f["last_rx"], None]] if f["last_rx"] and now - f["last_rx"] > f["gap"] else [])}
                   for f in self.udp]
        return {"now": now, "tcp": tcp, "udp": udp}

    def mark(self):
        with self.lock:
            for o in self.tcp + self.udp:
                o["gaps"] = []
        return {"marked": time.time()}

    def close(self):
        self.short_stop.set()
        self.closing = True
        self.poke()
        self.thread.join(2)
        with self.lock:
            for o in self.tcp + self.udp:
                try:
                    o["sock"].close()
                except OSError:
                    pass
        return {"closed": True}


def load_main():
    load = Load()
    out = sys.stdout
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        c = json.loads(line)
        op = c.pop("op")
        try:
            if op == "pool":
                r = load.pool(**c)
            elif op == "udp":
                r = load.udp_flows(**c)
            elif op == "short":
                r = load.short_start(**c)
            elif op == "short_stop":
                r = load.short_end()
            elif op == "batch":
                r = load.batch(**c)
            elif op == "report":
                r = load.report()
            elif op == "mark":
                r = load.mark()
            elif op == "close":
                r = load.close()
                out.write(json.dumps(r) + "\n")
                out.flush()
                return
            else:
                r = {"error": f"unknown op {op}"}
        except Exception as e:  # noqa: BLE001 — answered, the caller decides
            r = {"error": f"{e.__class__.__name__}: {e}"}
        out.write(json.dumps(r) + "\n")
        out.flush()
    load.close()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "echo-server":
        asyncio.run(echo_server(int(sys.argv[2])))
    elif len(sys.argv) >= 2 and sys.argv[1] == "load":
        load_main()
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)
