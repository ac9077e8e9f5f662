//! A browser in the room: its HTTP request, the answer, and its WebSocket.
//!
//! The request is read a line at a time into [`Request`]; the answer (the
//! page, a `101`, or an error) goes out as a [`Reply`]; after a `101` the
//! client reads text frames into lines, answers pings, and is sent every
//! line of the log as one text frame (`log.rs`). The pure parts (headers,
//! frame headers, the accept key) are in [`crate::web`].

use heapless::Vec;

use super::framing::Framed;
use super::*;
use crate::web::{close, frame, opcode, server_header, unmask, Answer, Frame, Request, PAGE, PAGE_HEAD};
use crate::wire::GREETING;

/// A browser's connection, as far as the room has read it.
#[derive(Clone, Debug)]
pub(crate) struct Web {
    pub phase: Phase,
    /// An HTTP answer still going out; nothing is read meanwhile.
    pub reply: Option<Reply>,
}

#[derive(Clone, Debug)]
pub(crate) enum Phase {
    /// Reading the HTTP request.
    Request(Request),
    /// Upgraded: frames both ways.
    Socket(Socket),
}

/// What an HTTP answer is made of: a head made for this request (in the
/// input buffer, which the request no longer needs), then parts from flash.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reply {
    /// Bytes of head at the start of the input buffer (0: none).
    pub made: u16,
    pub parts: [&'static [u8]; 2],
    /// Bytes of the whole answer sent so far.
    pub sent: usize,
}

impl Reply {
    fn of(parts: [&'static [u8]; 2]) -> Reply {
        Reply { made: 0, parts, sent: 0 }
    }

    fn len(&self) -> usize {
        usize::from(self.made) + self.parts[0].len() + self.parts[1].len()
    }
}

/// A WebSocket's reading and writing state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Socket {
    /// Unmasked bytes of the text message being received, at the input
    /// buffer's start.
    message: usize,
    /// A message's first frame came without FIN: continuations follow.
    fragmented: bool,
    /// The frame whose payload is being read, and how much of it was.
    reading: Option<(Frame, usize)>,
    /// A whole message waits for a flood-control token.
    complete: bool,
    /// A control frame's payload as it arrives; a ping's is kept as its
    /// pong's until that is sent.
    control: Vec<u8, 125>,
    /// A pong to send (its payload is `control`), and how much of it went.
    pub pong: Option<usize>,
    /// The close frame to send last (its code), and how much of it went.
    pub close: Option<(u16, usize)>,
}

impl Web {
    pub const NEW: Web = Web { phase: Phase::Request(Request::NEW), reply: None };
}

impl Room<'_> {
    /// Reads what a browser sent: request lines, or frames.
    pub(super) fn handle_web_input(&mut self, id: ClientId, now: Instant) {
        if self.client(id).web.reply.is_some() {
            // The input buffer holds the answer's head, not the browser's bytes.
            return;
        }
        match self.client(id).web.phase {
            Phase::Request(_) => self.read_request(id, now),
            Phase::Socket(_) => self.read_frames(id, now),
        }
    }

    /// The web listener's clients read nothing while an answer goes out,
    /// nor after their close frame.
    pub(super) fn web_reading(&self, id: ClientId) -> bool {
        let web = &self.client(id).web;
        web.reply.is_none()
            && !matches!(&web.phase, Phase::Socket(socket) if socket.close.is_some() || socket.pong.is_some())
    }

    fn read_request(&mut self, id: ClientId, now: Instant) {
        loop {
            let origins = self.web_origins;
            let client = self.client_mut(id);
            let Phase::Request(request) = &mut client.web.phase else { return };
            match client.input.next_line() {
                Framed::Partial => return,
                Framed::Overlong => return self.answer(id, Answer::Refuse(crate::web::answer::TOO_LARGE), now),
                Framed::Line { len, size } => {
                    let answer = request.line(&client.input.data()[..len], size, origins);
                    client.input.consume(size);
                    if let Some(answer) = answer {
                        return self.answer(id, answer, now);
                    }
                }
            }
        }
    }

    /// Sends the answer to a request: the page or an error, then close; or
    /// the `101`, and the client is a WebSocket asked for its nickname.
    pub(super) fn answer(&mut self, id: ClientId, answer: Answer, now: Instant) {
        let client = self.client_mut(id);
        client.input.clear();
        match answer {
            Answer::Page => {
                client.web.reply = Some(Reply::of([PAGE_HEAD, PAGE]));
                self.start_leaving(id, Reason::Answered, now);
            }
            Answer::Refuse(response) => {
                client.web.reply = Some(Reply::of([response, b""]));
                self.start_leaving(id, Reason::Answered, now);
            }
            Answer::Upgrade(key) => {
                let head: [&[u8]; 3] = [
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                      Sec-WebSocket-Accept: ",
                    &key,
                    b"\r\n\r\n",
                ];
                for part in head {
                    client.input.extend(part);
                }
                let made = client.input.data().len() as u16;
                client.web.reply = Some(Reply { made, parts: [b"", b""], sent: 0 });
                client.web.phase = Phase::Socket(Socket::default());
                self.push(Recipient::One(id), &[GREETING, b"\n"]);
            }
        }
    }

    /// A registration timeout while the request was still coming.
    pub(super) fn request_timed_out(&mut self, id: ClientId, now: Instant) -> bool {
        if !matches!(self.client(id).web.phase, Phase::Request(_)) || self.client(id).web.reply.is_some() {
            return false;
        }
        self.answer(id, Answer::Refuse(crate::web::answer::TIMEOUT), now);
        true
    }

    fn read_frames(&mut self, id: ClientId, now: Instant) {
        loop {
            let client = self.client_mut(id);
            let Phase::Socket(socket) = &mut client.web.phase else { return };
            if socket.close.is_some() {
                // Nothing after a close counts.
                return client.input.clear();
            }
            if socket.pong.is_some() {
                // The frames after a ping wait until its pong is out.
                return;
            }
            if socket.complete {
                if !self.take_token(id, now) {
                    return;
                }
                if !self.web_message(id, now) {
                    return;
                }
                continue;
            }
            let message = socket.message;
            match socket.reading {
                None => {
                    let frame = match frame(&client.input.data()[message..], MAX_LINE - message) {
                        Ok(Some(frame)) => frame,
                        Ok(None) => return,
                        Err(code) => return self.close_socket(id, code, now),
                    };
                    let data = frame.opcode & 0x8 == 0;
                    let continuation = frame.opcode == opcode::CONTINUATION;
                    if data && continuation != socket.fragmented {
                        // A continuation of nothing, or a new message in the middle of one.
                        return self.close_socket(id, close::PROTOCOL, now);
                    }
                    client.input.remove(message, frame.header);
                    socket.control.clear();
                    socket.reading = Some((frame, 0));
                }
                Some((frame, read)) => {
                    let available = client.input.data().len() - message;
                    let take = available.min(frame.len - read);
                    let payload = &mut client.input.data_mut()[message..message + take];
                    unmask(payload, frame.mask, read);
                    if frame.opcode & 0x8 == 0 {
                        socket.message += take;
                    } else {
                        let _ = socket.control.extend_from_slice(payload);
                        client.input.remove(message, take);
                    }
                    if read + take < frame.len {
                        socket.reading = Some((frame, read + take));
                        return;
                    }
                    socket.reading = None;
                    match frame.opcode {
                        opcode::PING => {
                            // Reading stops until its pong is out.
                            socket.pong = Some(0);
                            self.lists.mark_ready(self.cells, id);
                            return;
                        }
                        opcode::PONG => {}
                        opcode::CLOSE => {
                            let code = match socket.control[..] {
                                [hi, lo, ..] => u16::from_be_bytes([hi, lo]),
                                _ => close::NORMAL,
                            };
                            return self.close_socket(id, code, now);
                        }
                        _ => {
                            socket.fragmented = !frame.fin;
                            socket.complete = frame.fin;
                        }
                    }
                }
            }
        }
    }

    /// The whole text message at the input's start, as a line; false if it
    /// ended the connection.
    fn web_message(&mut self, id: ClientId, now: Instant) -> bool {
        let client = self.client_mut(id);
        let Phase::Socket(socket) = &mut client.web.phase else { return false };
        let len = socket.message;
        socket.message = 0;
        socket.complete = false;
        let Ok(text) = core::str::from_utf8(&client.input.data()[..len]) else {
            self.close_socket(id, close::INVALID, now);
            return false;
        };
        let text = super::input::cleaned(text.as_bytes());
        self.client_mut(id).input.consume(len);
        self.handle_text(id, &text, now);
        matches!(self.client(id).state, State::Greeting | State::Chatting)
    }

    /// Ends a WebSocket with a close frame of `code` (the browser's own
    /// close is answered with its code); a client in the room leaves it.
    pub(super) fn close_socket(&mut self, id: ClientId, code: u16, now: Instant) {
        let client = self.client_mut(id);
        if let Phase::Socket(socket) = &mut client.web.phase {
            socket.close = Some((code, 0));
        }
        client.input.clear();
        let reason =
            if code == close::NORMAL || code == close::GOING_AWAY { Reason::PeerClosed } else { Reason::Protocol };
        match client.state {
            State::Chatting => self.leave(id, reason, "", now),
            State::Greeting => self.start_leaving(id, reason, now),
            _ => {}
        }
        self.lists.mark_ready(self.cells, id);
    }

    /// What a browser is to be sent next.
    pub(super) fn web_next(&self, id: ClientId) -> WebNext {
        let client = self.client(id);
        if client.web.reply.is_some() {
            return WebNext::Reply;
        }
        let Phase::Socket(socket) = &client.web.phase else { return WebNext::Nothing };
        if socket.pong.is_some() && !client.cursor.in_line() {
            return WebNext::Pong;
        }
        let end = self.ring.next().min(client.window.until);
        let start = client.cursor.seq.max(self.ring.first());
        let lines = client.cursor.seq >= self.ring.first()
            && start < end
            && (client.cursor.in_line() || (start..end).any(|seq| client.window.sees(id, seq, self.ring.line(seq))));
        match (lines, socket.close) {
            (true, _) => WebNext::Lines,
            (false, Some((_, sent))) if sent < 4 => WebNext::Close,
            (false, _) => WebNext::Nothing,
        }
    }

    /// What one write to a browser carries now.
    pub(super) fn web_output<'s>(&'s mut self, id: ClientId, batch: &'s mut [u8; SEED_WRITE]) -> &'s [u8] {
        let next = self.web_next(id);
        if next == WebNext::Lines {
            let n = self.walk(id, Some(batch), 0);
            return &batch[..n];
        }
        let client = self.client(id);
        match (next, &client.web.reply, &client.web.phase) {
            (WebNext::Reply, Some(reply), _) => {
                let made = usize::from(reply.made);
                if reply.sent < made {
                    return &client.input.data()[reply.sent..made];
                }
                let mut at = reply.sent - made;
                for part in reply.parts {
                    if at < part.len() {
                        return &part[at..];
                    }
                    at -= part.len();
                }
                &[]
            }
            (WebNext::Pong, _, Phase::Socket(Socket { pong: Some(sent), control: payload, .. })) => {
                let (head, len) = server_header(opcode::PONG, payload.len());
                batch[..len].copy_from_slice(&head[..len]);
                batch[len..len + payload.len()].copy_from_slice(payload);
                &batch[*sent..len + payload.len()]
            }
            (WebNext::Close, _, Phase::Socket(Socket { close: Some((code, sent)), .. })) => {
                let [hi, lo] = code.to_be_bytes();
                batch[..4].copy_from_slice(&[0x88, 2, hi, lo]);
                &batch[*sent..4]
            }
            _ => &[],
        }
    }

    /// `n` bytes of [`Room::web_output`] went out.
    pub(super) fn web_sent(&mut self, id: ClientId, n: usize) {
        let next = self.web_next(id);
        let client = self.client_mut(id);
        match (next, &mut client.web.reply, &mut client.web.phase) {
            (WebNext::Reply, Some(reply), _) => {
                reply.sent += n;
                if reply.sent >= reply.len() {
                    client.web.reply = None;
                    // The head made for it was in the input buffer.
                    client.input.clear();
                }
            }
            (WebNext::Pong, _, Phase::Socket(socket)) => {
                let len = server_header(opcode::PONG, socket.control.len()).1 + socket.control.len();
                let sent = socket.pong.unwrap_or(0) + n;
                socket.pong = (sent < len).then_some(sent);
                if socket.pong.is_none() {
                    // Reading goes on: the frames after the ping wait in the input.
                    self.lists.mark_ready(self.cells, id);
                }
            }
            (WebNext::Lines, ..) => {
                self.walk(id, None, n);
            }
            (WebNext::Close, _, Phase::Socket(socket)) => {
                if let Some((_, sent)) = &mut socket.close {
                    *sent = (*sent + n).min(4);
                }
            }
            _ => {}
        }
    }
}

/// What a browser is sent next, in this order: an HTTP answer; a pong
/// (between two frames); the log's lines; the close frame, last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WebNext {
    Nothing,
    Reply,
    Pong,
    Lines,
    Close,
}
