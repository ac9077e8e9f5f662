"""A chat server that gives clients different orders -- a test fixture for
chat-bench --same-order, which must notice.

The room of fixture_room.py (chat-server's line dialect, just enough for
chat-bench). Nothing is lost, duplicated or torn, and every sender's lines
reach everyone in that sender's order; but every second client to register
(the 2nd, 4th, ...) gets two lines of different senders that follow each
other swapped: it holds one line back and sends it after the next line of
another sender (a next line of the same sender pushes it out first). A line
held when the room has been quiet for 0.2 s is sent then.

    python3 swapping_server.py [HOST] [PORT]    (default 127.0.0.1 0)

The first line on stdout is `listening on HOST:PORT`.
"""
from fixture_room import Room


class SwappingRoom(Room):
    quiet = 0.2
    registered = 0

    def release(self, client):
        if client.held is not None:
            self.send(client, client.held[1])
            client.held = None

    def broadcast(self, data):
        # Notices (joined, left) keep their place: what is held goes first.
        for client in self.members():
            self.release(client)
            self.send(client, data)

    def joined(self, client):
        client.swaps = self.registered % 2 == 1
        client.held = None  # (sender, line) held back
        self.registered += 1
        super().joined(client)

    def chat(self, sender, data):
        for client in self.members():
            if not client.swaps:
                self.send(client, data)
            elif client.held is None:
                client.held = (sender.sock, data)
            elif client.held[0] == sender.sock:
                self.release(client)
                client.held = (sender.sock, data)
            else:
                self.send(client, data)  # the deliberate swap
                self.release(client)

    def idle(self):
        for client in self.members():
            self.release(client)


SwappingRoom().run()
