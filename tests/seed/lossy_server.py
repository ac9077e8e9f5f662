"""A deliberately lossy chat server -- a test fixture for chat-bench, which
must notice what it drops.

It speaks chat-server's line dialect (PROTOCOL.md), just enough for
chat-bench: on accept it sends `NICK`; the first line is the nickname (not
checked); the room sees `{nick} joined!` and the newcomer then gets
`Connected to server!`; every later line is broadcast to everyone, sender
included, as `{nick}: {text}` -- except every 7th chat line (the 7th, 14th,
... since the start), which is silently dropped. Joins are never dropped. On
disconnect the room sees `{nick} left!`.

One thread, non-blocking sockets over a selector, output buffered per client,
so nothing else is lost, reordered or torn.

    python3 lossy_server.py [HOST] [PORT]    (default 127.0.0.1 0)

The first line on stdout is `listening on HOST:PORT`.
"""
import selectors
import socket
import sys

DROP_EVERY = 7

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


clients = {}
chat_lines = 0


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


def broadcast(data):
    for client in list(clients.values()):
        if client.nick is not None:
            send(client, data)


def drop(client):
    del clients[client.sock]
    selector.unregister(client.sock)
    client.sock.close()
    if client.nick is not None:
        broadcast('{} left!\n'.format(client.nick).encode())


def handle_line(client, line):
    global chat_lines
    line = line.rstrip(b'\r')
    if client.nick is None:
        client.nick = line.decode('utf-8', 'replace')
        broadcast('{} joined!\n'.format(client.nick).encode())
        send(client, b'Connected to server!\n')
        return
    if not line:
        return
    chat_lines += 1
    if chat_lines % DROP_EVERY == 0:
        return  # the deliberate loss
    broadcast(client.nick.encode() + b': ' + line + b'\n')


while True:
    for key, mask in selector.select():
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
