"""TCP chat room server -- a copy of the tutorial in tcp-chat-room.md, kept as a
test fixture for the Rust project.

The logic and all texts are the tutorial's, including its bugs (every received
chunk is broadcast as-is, so coalesced reads go out as one chunk; a failing
send inside broadcast() is handled by whichever client's thread called it;
nicknames are read with a single recv(1024); ASCII encode/decode throughout).

Deviations from the tutorial, each marked `# test fixture:` in the code:
  1. The address is configurable: `python3 server.py [HOST] [PORT]`, default
     127.0.0.1 55555 (imports sys for this). Port 0 is allowed.
  2. Right after listen() it prints `listening on HOST:PORT` with the real
     bound address, so a test can find the port when PORT is 0.
  3. SO_REUSEADDR is set on the listening socket before bind().
  4. print() calls use flush=True (stdout is a pipe under test).
  5. In handle(), recv() returning b'' (clean disconnect) is treated as the
     error case, so the client is removed and `X left!` is broadcast, instead
     of broadcasting empty bytes forever as the tutorial does.
"""
import socket
import sys  # test fixture: for the configurable address
import threading

# Connection Data
host = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'  # test fixture: configurable host
port = int(sys.argv[2]) if len(sys.argv) > 2 else 55555  # test fixture: configurable port

# Starting Server
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # test fixture: SO_REUSEADDR
server.bind((host, port))
server.listen()
print("listening on {}:{}".format(*server.getsockname()[:2]), flush=True)  # test fixture: report real port

# Lists For Clients and Their Nicknames
clients = []
nicknames = []


# Sending Messages To All Connected Clients
def broadcast(message):
    for client in clients:
        client.send(message)


# Handling Messages From Clients
def handle(client):
    while True:
        try:
            # Broadcasting Messages
            message = client.recv(1024)
            if not message:  # test fixture: clean EOF is treated as the error case
                raise ConnectionError('client closed the connection')  # test fixture: (see above)
            broadcast(message)
        except:
            # Removing And Closing Clients
            index = clients.index(client)
            clients.remove(client)
            client.close()
            nickname = nicknames[index]
            broadcast('{} left!'.format(nickname).encode('ascii'))
            nicknames.remove(nickname)
            break


# Receiving / Listening Function
def receive():
    while True:
        # Accept Connection
        client, address = server.accept()
        print("Connected with {}".format(str(address)), flush=True)  # test fixture: flush=True

        # Request And Store Nickname
        client.send('NICK'.encode('ascii'))
        nickname = client.recv(1024).decode('ascii')
        nicknames.append(nickname)
        clients.append(client)

        # Print And Broadcast Nickname
        print("Nickname is {}".format(nickname), flush=True)  # test fixture: flush=True
        broadcast("{} joined!".format(nickname).encode('ascii'))
        client.send('Connected to server!'.encode('ascii'))

        # Start Handling Thread For Client
        thread = threading.Thread(target=handle, args=(client,))
        thread.start()


receive()
