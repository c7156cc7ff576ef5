"""Network faults a test controls, on loopback: a TCP proxy that goes silent on demand, as a
blackholed link does (nothing refused, nothing reset: bytes just stop), and one that delivers the
server's identification line together with its next bytes, in one segment, one that hands the
server's bytes over in small pieces, each its own segment, and one that forgets idle connections."""
import select
import socket
import struct
import threading
import time


class BlackholeProxy:
    """A TCP proxy the test controls: cut() blackholes every connection, open and new (bytes are
    read and dropped, nothing is refused), as a network partition does."""

    def __init__(self, target_port):
        self.target = target_port
        self.is_cut = threading.Event()
        self.closed = False
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while not self.closed:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self.pipe, args=(c,), daemon=True).start()

    def pipe(self, c):
        try:
            u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
        except OSError:
            c.close()
            return
        peer = {c: u, u: c}
        try:
            while not self.closed:
                ready, _, _ = select.select([c, u], [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data or self.ends(c, from_server=s is u):
                        return
                    if not self.is_cut.is_set():
                        self.forward(s is u, data, peer[s])
        except OSError:
            pass
        finally:
            c.close()
            u.close()

    def ends(self, client, from_server):
        """True: the connection is closed here (before these bytes are passed on)."""
        return False

    def forward(self, from_server, data, to):
        to.sendall(data)

    def cut(self):
        self.is_cut.set()

    def close(self):
        self.closed = True
        self.srv.close()


class CoalescingProxy(BlackholeProxy):
    """Holds the server's first bytes (its identification line) until more arrive (its key
    exchange, sent once the client's line is in), then sends them in one write: what a client
    that reads the line in one large read then gets beyond it."""

    def __init__(self, target_port):
        self.held = {}
        super().__init__(target_port)

    def forward(self, from_server, data, to):
        if not from_server or to in self.held and self.held[to] is None:
            return to.sendall(data)
        held = self.held.get(to, b"") + data
        nl = held.find(b"\n")
        if nl >= 0 and len(held) > nl + 1:  # the line and something after it
            self.held[to] = None
            return to.sendall(held)
        self.held[to] = held


class TricklingProxy(BlackholeProxy):
    """Hands the server's bytes to the client in pieces of the sizes in SIZES, in turn, each sent
    on its own a millisecond after the last: every read the client makes can find a piece, part of
    one, or nothing, and more arrives after each (an SSH packet split across segments, as a slow
    or lossy path delivers it)."""
    SIZES = (1, 7, 300, 2047, 2048, 2049, 5000)

    def __init__(self, target_port):
        self.turn = 0
        self.pieces = 0
        super().__init__(target_port)

    def forward(self, from_server, data, to):
        if not from_server:
            return to.sendall(data)
        to.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while data:
            n = self.SIZES[self.turn % len(self.SIZES)]
            self.turn += 1
            self.pieces += 1
            to.sendall(data[:n])
            data = data[n:]
            time.sleep(0.001)


class ForgetfulProxy(BlackholeProxy):
    """Forgets a connection that carried nothing for `forget_after` seconds, as a stateful firewall
    or NAT does: the client's next bytes are answered with a reset (RST) and never reach the server.
    `resets` counts the connections so ended."""

    def __init__(self, target_port, forget_after=1.0):
        self.forget_after = forget_after
        self.resets = 0
        self.last = {}  # client socket -> when it last carried bytes either way
        super().__init__(target_port)

    def ends(self, client, from_server):
        now = time.monotonic()
        last = self.last.get(client, now)
        self.last[client] = now
        if from_server or now - last <= self.forget_after:
            return False
        self.resets += 1
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # closed: a reset
        return True
