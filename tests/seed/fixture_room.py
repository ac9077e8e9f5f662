"""The skeleton of the test fixtures lossy_server.py and swapping_server.py:
a chat room in chat-server's line dialect (PROTOCOL.md), just enough for
chat-bench. On accept it sends `NICK`; the first line is the nickname (not
checked); the room sees `{nick} joined!` and the newcomer then gets
`Connected to server!`; every later non-empty line is a chat line, which
`Room.chat` broadcasts to everyone, sender included, as `{nick}: {text}`; on
disconnect the room sees `{nick} left!`. A fixture subclasses `Room` and
changes what it must get wrong.

One thread, non-blocking sockets over a selector, output buffered per client,
so nothing is lost, reordered or torn but what a fixture means to.

The first line on stdout is `listening on HOST:PORT` (HOST and PORT from
the command line, default 127.0.0.1 0).
"""
import selectors
import socket
import sys


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.nick = None
        self.inbuf = b''
        self.out = bytearray()


class Room:
    # Seconds of silence after which `idle` runs; None: never.
    quiet = None

    def __init__(self):
        host = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
        port = int(sys.argv[2]) if len(sys.argv) > 2 else 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind((host, port))
        self.listener.listen(128)
        self.listener.setblocking(False)
        print("listening on {}:{}".format(*self.listener.getsockname()[:2]), flush=True)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.clients = {}

    def members(self):
        """The registered clients."""
        return [client for client in list(self.clients.values()) if client.nick is not None]

    def watch(self, client):
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0)
        self.selector.modify(client.sock, events, client)

    def flush(self, client):
        try:
            while client.out:
                sent = client.sock.send(client.out)
                del client.out[:sent]
        except BlockingIOError:
            pass
        except OSError:
            client.out.clear()
        self.watch(client)

    def send(self, client, data):
        client.out += data
        self.flush(client)

    def broadcast(self, data):
        for client in self.members():
            self.send(client, data)

    def joined(self, client):
        self.broadcast('{} joined!\n'.format(client.nick).encode())
        self.send(client, b'Connected to server!\n')

    def chat(self, client, data):
        """`data` is `{nick}: {text}\\n` from `client`."""
        self.broadcast(data)

    def idle(self):
        pass

    def drop(self, client):
        del self.clients[client.sock]
        self.selector.unregister(client.sock)
        client.sock.close()
        if client.nick is not None:
            self.broadcast('{} left!\n'.format(client.nick).encode())

    def handle_line(self, client, line):
        line = line.rstrip(b'\r')
        if client.nick is None:
            client.nick = line.decode('utf-8', 'replace')
            self.joined(client)
        elif line:
            self.chat(client, client.nick.encode() + b': ' + line + b'\n')

    def accept(self):
        try:
            sock, _ = self.listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        client = Client(sock)
        self.clients[sock] = client
        self.selector.register(sock, selectors.EVENT_READ, client)
        self.send(client, b'NICK')

    def read(self, client):
        try:
            data = client.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b''
        if not data:
            self.drop(client)
            return
        client.inbuf += data
        while b'\n' in client.inbuf and client.sock in self.clients:
            line, client.inbuf = client.inbuf.split(b'\n', 1)
            self.handle_line(client, line)

    def run(self):
        while True:
            ready = self.selector.select(self.quiet)
            if not ready:
                self.idle()
            for key, mask in ready:
                if key.fileobj is self.listener:
                    self.accept()
                    continue
                client = key.data
                if client.sock not in self.clients:
                    continue
                if mask & selectors.EVENT_WRITE:
                    self.flush(client)
                if mask & selectors.EVENT_READ:
                    self.read(client)
