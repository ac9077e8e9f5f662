"""TCP chat room client -- a copy of the tutorial in tcp-chat-room.md, kept as a
test fixture for the Rust project.

The logic and all texts are the tutorial's, including its bugs (each recv(1024)
chunk is decoded and printed as-is, so coalesced messages print on one line;
if the server goes away, recv() returns b'' and an empty line is printed in a
loop; ASCII encode/decode throughout).

Deviations from the tutorial, each marked `# test fixture:` in the code:
  1. The address is configurable: `python3 client.py [HOST] [PORT]`, default
     127.0.0.1 55555 (imports sys for this).
  2. print() calls use flush=True (stdout is a pipe under test).
  3. When input() in the writer thread raises EOFError (stdin closed), the
     socket is closed and the process exits with os._exit(0) (imports os for
     this), so a test can end a client by closing its stdin. Because of this
     no thread needs to be made a daemon thread.
"""
import os  # test fixture: for os._exit on stdin EOF
import socket
import sys  # test fixture: for the configurable address
import threading

# Choosing Nickname
nickname = input("Choose your nickname: ")

# Connecting To Server
host = sys.argv[1] if len(sys.argv) > 1 else '127.0.0.1'  # test fixture: configurable host
port = int(sys.argv[2]) if len(sys.argv) > 2 else 55555  # test fixture: configurable port
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client.connect((host, port))  # test fixture: was ('127.0.0.1', 55555)


# Listening to Server and Sending Nickname
def receive():
    while True:
        try:
            # Receive Message From Server
            # If 'NICK' Send Nickname
            message = client.recv(1024).decode('ascii')
            if message == 'NICK':
                client.send(nickname.encode('ascii'))
            else:
                print(message, flush=True)  # test fixture: flush=True
        except:
            # Close Connection When Error
            print("An error occured!", flush=True)  # test fixture: flush=True
            client.close()
            break


# Sending Messages To Server
def write():
    while True:
        try:  # test fixture: stdin EOF ends the client
            line = input('')  # test fixture: (input moved out of the format call)
        except EOFError:  # test fixture: close the socket and exit cleanly
            client.close()  # test fixture: (see above)
            os._exit(0)  # test fixture: (see above)
        message = '{}: {}'.format(nickname, line)  # test fixture: was input('') inline
        client.send(message.encode('ascii'))


# Starting Threads For Listening And Writing
receive_thread = threading.Thread(target=receive)
receive_thread.start()

write_thread = threading.Thread(target=write)
write_thread.start()
