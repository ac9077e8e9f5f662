"""A chat server that gives clients different orders -- a test fixture for
chat-bench --same-order, which must notice.

It speaks chat-server's line dialect (PROTOCOL.md), just enough for
chat-bench, as lossy_server.py does: on accept it sends `NICK`; the first
line is the nickname (not checked); the room sees `{nick} joined!` and the
newcomer then gets `Connected to server!`; every later line is broadcast to
everyone, sender included, as `{nick}: {text}`. Nothing is lost, duplicated
or torn, and every sender's lines reach everyone in that sender's order; but
every second client to register (the 2nd, 4th, ...) gets two lines of
different senders that follow each other swapped: it holds one line back and
sends it after the next line of another sender (a next line of the same
sender pushes it out first). A line held when the room has been quiet for
0.2 s is sent then.

One thread, non-blocking sockets over a selector, output buffered per client.

    python3 swapping_server.py [HOST] [PORT]    (default 127.0.0.1 0)

The first line on stdout is `listening on HOST:PORT`.
"""
import selectors
import socket
import sys

QUIET = 0.2

host = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'
port = int(sys.argv[2]) if len(sys.argv) > 2 else 0

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((host, port))
listener.listen(128)
listener.setblocking(False)
print("listening on {}:{}".format(*listener.getsockname()[:2]), flush=True)

selector = selectors.DefaultSelector()
selector.register(listener, selectors.EVENT_READ)


class Client:
    def __init__(self, sock):
        self.sock = sock
        self.nick = None
        self.inbuf = b''
        self.out = bytearray()
        self.swaps = False
        self.held = None  # (sender, line) held back


clients = {}
registered = 0


def watch(client):
    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0)
    selector.modify(client.sock, events, client)


def flush(client):
    try:
        while client.out:
            sent = client.sock.send(client.out)
            del client.out[:sent]
    except BlockingIOError:
        pass
    except OSError:
        client.out.clear()
    watch(client)


def send(client, data):
    client.out += data
    flush(client)


def release(client):
    if client.held is not None:
        send(client, client.held[1])
        client.held = None


def notice(data):
    for client in list(clients.values()):
        if client.nick is not None:
            release(client)
            send(client, data)


def chat(sender, data):
    for client in list(clients.values()):
        if client.nick is None:
            continue
        if not client.swaps:
            send(client, data)
        elif client.held is None:
            client.held = (sender, data)
        elif client.held[0] == sender:
            release(client)
            client.held = (sender, data)
        else:
            send(client, data)  # the deliberate swap
            release(client)


def drop(client):
    del clients[client.sock]
    selector.unregister(client.sock)
    client.sock.close()
    if client.nick is not None:
        notice('{} left!\n'.format(client.nick).encode())


def handle_line(client, line):
    global registered
    line = line.rstrip(b'\r')
    if client.nick is None:
        client.nick = line.decode('utf-8', 'replace')
        client.swaps = registered % 2 == 1
        registered += 1
        notice('{} joined!\n'.format(client.nick).encode())
        send(client, b'Connected to server!\n')
        return
    if not line:
        return
    chat(client.sock, client.nick.encode() + b': ' + line + b'\n')


while True:
    ready = selector.select(QUIET)
    if not ready:
        for client in list(clients.values()):
            release(client)
    for key, mask in ready:
        if key.fileobj is listener:
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                continue
            sock.setblocking(False)
            client = Client(sock)
            clients[sock] = client
            selector.register(sock, selectors.EVENT_READ, client)
            send(client, b'NICK')
            continue
        client = key.data
        if client.sock not in clients:
            continue
        if mask & selectors.EVENT_WRITE:
            flush(client)
        if mask & selectors.EVENT_READ:
            try:
                data = client.sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b''
            if not data:
                drop(client)
                continue
            client.inbuf += data
            while b'\n' in client.inbuf and client.sock in clients:
                line, client.inbuf = client.inbuf.split(b'\n', 1)
                handle_line(client, line)
