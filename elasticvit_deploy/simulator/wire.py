"""Smart-socket framing of the adb server protocol: 4-hex-digit length-prefixed requests, OKAY / FAIL replies."""

from __future__ import annotations

import select
import socket
import struct


class Closed(Exception):
    """The client closed the connection."""


class Wire:
    """One client connection to the simulated adb server."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def recv_exact(self, n: int) -> bytes:
        """Exactly n bytes; raises Closed if the client hangs up first."""
        chunks, left = [], n
        while left:
            chunk = self.sock.recv(min(left, 1 << 16))
            if not chunk:
                raise Closed()
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def read_request(self) -> str:
        """A smart-socket request: 4 hex digits of length, then the service name."""
        header = self.recv_exact(4)
        try:
            length = int(header, 16)
        except ValueError:
            raise Closed() from None  # not the adb protocol: hang up like adb does
        return self.recv_exact(length).decode("utf-8", errors="replace")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def okay(self, payload: str | None = None) -> None:
        """OKAY, optionally followed by a length-prefixed string."""
        self.send(b"OKAY" + (b"" if payload is None else hex_block(payload)))

    def fail(self, message: str) -> None:
        self.send(b"FAIL" + hex_block(message))

    def send_string(self, text: str) -> None:
        """A length-prefixed string on its own (what a service writes after its OKAY)."""
        self.send(hex_block(text))

    def client_stirred(self, timeout: float) -> bool:
        """Whether the client sent something or hung up within `timeout` seconds (a waiting service then ends,
        as the real server's wait and tracker services do)."""
        readable, _, _ = select.select([self.sock], [], [], timeout)
        return bool(readable)

    def recv_u32(self) -> int:
        return int(struct.unpack("<I", self.recv_exact(4))[0])


def hex_block(text: str) -> bytes:
    data = text.encode("utf-8")
    return b"%04x" % len(data) + data
