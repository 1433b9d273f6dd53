#!/usr/bin/env python3
"""Clients that never read, against a sluice gateway's data listener.

HTTP/2: connections whose streams are held at a zero receive window (the client answers
SETTINGS and PINGs, so the connection stays healthy, but never sends WINDOW_UPDATE).
HTTP/1.1: connections with a 4 KiB receive buffer that send one request and read nothing.

Prints "opened H2_STREAMS H1_CONNECTIONS" once every request is sent, then holds them until
stdin closes (or SIGTERM), and exits closing every socket.

    stalled_clients.py --addr 127.0.0.1:8443 --ca ca.pem --cert acme.pem --key acme.key \
        --path '/v1/datasets/x/records?limit=10000' --header 'sluice-scenario: s' \
        --h2-connections 5 --h2-streams 100 --h1-connections 500
"""
import argparse
import selectors
import signal
import socket
import ssl
import sys
import threading

import h2.config
import h2.connection
import h2.events
import h2.settings


def context(args, alpn):
    ctx = ssl.create_default_context(cafile=args.ca)
    ctx.load_cert_chain(args.cert, args.key)
    ctx.set_alpn_protocols([alpn])
    return ctx


def connect(args, ctx, rcvbuf=None):
    host, port = args.addr.rsplit(":", 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect((host, int(port)))
    return ctx.wrap_socket(s, server_hostname="localhost")


def open_h1(args, ctx, headers):
    t = connect(args, ctx, rcvbuf=4096)
    lines = [f"GET {args.path} HTTP/1.1", "host: localhost"]
    lines += [f"{k}: {v}" for k, v in headers]
    t.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    return t


def open_h2(args, ctx, headers):
    t = connect(args, ctx)
    if t.selected_alpn_protocol() != "h2":
        sys.exit("the server did not select h2")
    conn = h2.connection.H2Connection(
        config=h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    )
    conn.local_settings = h2.settings.Settings(
        client=True,
        initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0},
    )
    conn.initiate_connection()
    for _ in range(args.h2_streams):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(
            sid,
            [(":method", "GET"), (":path", args.path), (":scheme", "https"),
             (":authority", "localhost")] + headers,
            end_stream=True,
        )
    t.sendall(conn.data_to_send())
    t.setblocking(False)
    return t, conn


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--addr", required=True)
    p.add_argument("--ca", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--header", action="append", default=[])
    p.add_argument("--h2-connections", type=int, default=5)
    p.add_argument("--h2-streams", type=int, default=100)
    p.add_argument("--h1-connections", type=int, default=500)
    args = p.parse_args()
    headers = [tuple(x.strip() for x in h.split(":", 1)) for h in args.header]

    h1 = [open_h1(args, context(args, "http/1.1"), headers) for _ in range(args.h1_connections)]
    ctx2 = context(args, "h2")
    h2s = [open_h2(args, ctx2, headers) for _ in range(args.h2_connections)]
    print(f"opened {args.h2_connections * args.h2_streams} {len(h1)}", flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    sel = selectors.DefaultSelector()
    for t, conn in h2s:
        sel.register(t, selectors.EVENT_READ, conn)
    statuses = {}
    while not stop.is_set():
        for key, _ in sel.select(timeout=0.2):
            t, conn = key.fileobj, key.data
            try:
                data = t.recv(65536)
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(t)
                continue
            # Frames are processed (SETTINGS and PING answered) but no window is ever granted.
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    status = dict(ev.headers).get(":status")
                    statuses[status] = statuses.get(status, 0) + 1
            out = conn.data_to_send()
            if out:
                try:
                    t.sendall(out)
                except OSError:
                    pass
    print(f"h2 response heads: {statuses}", flush=True)
    for t in h1:
        t.close()
    for t, _ in h2s:
        t.close()


if __name__ == "__main__":
    main()
