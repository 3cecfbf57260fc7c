"""loadtest.socket_drops: the kernel's drops at a full UDP socket, found by the process that
holds it (real sockets on loopback), and a row whose clients dropped is not a measurement."""

from __future__ import annotations

import os
import socket

from loadtest.report import clients_verdict
from loadtest.socket_drops import parse_drops, udp_drops


def test_a_full_socket_counts_its_drops_for_the_process_that_holds_it() -> None:
    full = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    read = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        full.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the kernel's minimum
        for sock in (full, read):
            sock.bind(("127.0.0.1", 0))
        before = udp_drops([os.getpid()]).get(os.getpid(), 0)
        for _ in range(500):  # never read: the buffer fills, the rest is dropped
            sender.sendto(b"x" * 1000, full.getsockname())
        read.setblocking(False)
        for _ in range(20):  # read as they come: nothing dropped
            sender.sendto(b"y" * 1000, read.getsockname())
            assert read.recv(2000) == b"y" * 1000
        dropped = udp_drops([os.getpid()])[os.getpid()] - before
        assert 400 <= dropped < 500
        assert udp_drops([999_999_999]) == {}  # no such process: nothing, no error
    finally:
        for sock in (full, read, sender):
            sock.close()


def test_parse_drops_reads_the_inode_and_drops_columns() -> None:
    table = (
        "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid"
        "  timeout inode ref pointer drops\n"
        "  123: 0100007F:A1B2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0"
        "        0 4242 2 0000000000000000 17\n"
    )
    assert parse_drops(table) == {4242: 17}


def test_clients_whose_sockets_dropped_did_not_keep_up() -> None:
    clients = {"cpu_pct_of_cores": 40.0, "socket_drops": 1234}
    assert clients_verdict(clients) == (
        False,
        "clients' sockets dropped 1,234 datagrams (receive buffers full)",
    )
    assert clients_verdict({"cpu_pct_of_cores": 40.0, "socket_drops": 0}) == (True, None)
