//! The chat room on a laptop: `chat-server` and `chat-client` over std sockets.
