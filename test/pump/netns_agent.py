#!/usr/bin/env python3
"""A dumb network agent that the end-to-end test runs inside each network namespace
(`ip netns exec NS python3 netns_agent.py --udp ADDR:PORT ... --tcp ADDR:PORT`).

It plays the client and the appliances of test_pump_netns.py:
  - reports every datagram received on its UDP sockets (the tunnel endpoints of an
    appliance) as a JSON line on stdout: {"ev": "rx", "port", "src", "sport", "data": hex};
  - holds an optional TCP listener (the appliance's health-probe target) that accepts and
    closes connections, and can stop and restart it;
  - sends datagrams on command.
Commands arrive as JSON lines on stdin:
  {"cmd": "send", "to": ADDR, "port": N, "from_port": N|null, "data": [hex, ...]}
  {"cmd": "tcp", "on": true|false}
  {"cmd": "ping", "id": X}          -> {"ev": "pong", "id": X} (a barrier)
  {"cmd": "exit"}
Standard library only, so that it starts in milliseconds.
"""
import argparse
import json
import select
import socket
import sys
import threading

out_lock = threading.Lock()


def emit(obj):
    with out_lock:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def split_hostport(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


class TcpTarget:
    def __init__(self, host, port):
        self.addr = (host, port)
        self.sock = None
        self.lock = threading.Lock()

    def set(self, on):
        with self.lock:
            if on and self.sock is None:
                s = socket.socket(socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET, socket.SOCK_STREAM)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(self.addr)
                s.listen(64)
                self.sock = s
                threading.Thread(target=self.accept_loop, args=(s,), daemon=True).start()
            elif not on and self.sock is not None:
                s, self.sock = self.sock, None
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
        emit({"ev": "tcp", "on": on})

    def accept_loop(self, s):
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            c.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--name", required=True)
    ap.add_argument("--udp", action="append", default=[], help="ADDR:PORT to receive on (repeatable)")
    ap.add_argument("--tcp", help="ADDR:PORT of the probe target")
    args = ap.parse_args()

    socks = {}
    for spec in args.udp:
        host, port = split_hostport(spec)
        s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        s.bind((host, port))
        socks[port] = s
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def rx_loop():
        while True:
            ready, _, _ = select.select(list(socks.values()), [], [], 1.0)
            for s in ready:
                data, (src, sport, *_) = s.recvfrom(65535)
                emit({"ev": "rx", "port": s.getsockname()[1], "src": src, "sport": sport, "data": data.hex()})

    if socks:
        threading.Thread(target=rx_loop, daemon=True).start()
    tcp = None
    if args.tcp:
        tcp = TcpTarget(*split_hostport(args.tcp))
        tcp.set(True)
    emit({"ev": "ready", "name": args.name})

    for line in sys.stdin:
        cmd = json.loads(line)
        c = cmd["cmd"]
        if c == "send":
            s = socks.get(cmd.get("from_port")) or sender
            for h in cmd["data"]:
                s.sendto(bytes.fromhex(h), (cmd["to"], cmd["port"]))
            emit({"ev": "sent", "n": len(cmd["data"])})
        elif c == "tcp":
            tcp.set(bool(cmd["on"]))
        elif c == "ping":
            emit({"ev": "pong", "id": cmd.get("id")})
        elif c == "exit":
            break


if __name__ == "__main__":
    main()
