"""A deliberately lossy chat server -- a test fixture for chat-bench, which
must notice what it drops.

The room of fixture_room.py (chat-server's line dialect, just enough for
chat-bench), except that every 7th chat line (the 7th, 14th, ... since the
start) is silently dropped. Joins are never dropped; nothing else is lost,
reordered or torn.

    python3 lossy_server.py [HOST] [PORT]    (default 127.0.0.1 0)

The first line on stdout is `listening on HOST:PORT`.
"""
from fixture_room import Room

DROP_EVERY = 7


class LossyRoom(Room):
    chat_lines = 0

    def chat(self, client, data):
        self.chat_lines += 1
        if self.chat_lines % DROP_EVERY == 0:
            return  # the deliberate loss
        self.broadcast(data)


LossyRoom().run()
