//! `chat-client`: a terminal and script client for the chat room.
//!
//! Three threads share the work. A *network thread* reads the socket, splits
//! what arrives into lines, cleans each with [`chat_core::clean`] (the server
//! may not be ours, and a line is about to reach a terminal) and shows it; an
//! *input thread* reads the user's lines: the line editor (reedline) on a
//! terminal, standard input otherwise. Both tell the *main thread* what
//! happened ([`Event`]); it owns every write to the socket and decides what a
//! typed line is (a nickname, a message, a message to keep until we are in
//! the room), so no line typed is ever dropped.
//!
//! On a terminal, received lines go to the editor's external printer, which
//! shows them above the input line and leaves that line intact. The printer's
//! channel has no room: a batch of lines is handed over only when the editor
//! takes it, and once the editor is gone the hand-over fails and the network
//! thread prints the lines itself, so none is lost between the two. Lines
//! typed ahead or pasted stay in the terminal library's queue until the
//! editor reads them (reedline stops reading at each Enter), unlike
//! rustyline, which read ahead and dropped the rest (its issues #690, #758).

use std::collections::{BTreeSet, VecDeque};
use std::fmt;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::{IpAddr, Ipv6Addr, Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use clap::Parser;
use log::{debug, warn};
use reedline::{
    default_emacs_keybindings, ColumnarMenu, Completer, EditCommand, Emacs, ExternalPrinter, KeyCode, KeyModifiers,
    MenuBuilder, Prompt, PromptEditMode, PromptHistorySearch, Reedline, ReedlineEvent, ReedlineMenu, Signal, Span,
    Suggestion,
};

use crate::tls_client::{Stream, TlsOptions};
use chat_core::wire::{CONNECTED, DEFAULT_PORT, MAX_LINE, WRONG_PASSWORD};
pub use chat_core::Dialect;

/// How long to try each of the server's addresses before giving up on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for the server to close the connection after we quit:
/// on a terminal in all, with piped input since the last thing that arrived
/// (the server reads a flooding script's lines slowly, and answers each one).
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// How often the line editor looks for lines to show while the user is idle.
const EDITOR_POLL: Duration = Duration::from_millis(20);

/// `--reconnect`: the first wait before reconnecting, doubled after each
/// failed attempt up to [`RECONNECT_MAX`].
const RECONNECT_FIRST: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(30);

/// The longest incoming line kept whole (a server's lines are at most 512
/// bytes plus a nickname); a longer one is shown in pieces, so a server that
/// never sends `\n` cannot make the client grow without bound.
const MAX_PENDING: usize = 16 * 1024;

/// What the server says to ask for a nickname.
const NICK_REQUEST: &str = chat_core::wire::GREETING_TEXT;

/// The prompts: while asked for a nickname, and in the room.
const NICK_PROMPT: &str = "Choose your nickname: ";
const PASSWORD_PROMPT: &str = "Password: ";
const CHAT_PROMPT: &str = "> ";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "chat-client",
    version,
    about = "Chat in a chat room: lines you type are sent, lines the room sends are shown.",
    long_about = "Chat in a chat room: lines you type are sent, lines the room sends are shown.\n\n\
        On a terminal, chat-client is a line editor: lines from the room appear above the line you \
        are typing, each with the local time. Arrow keys walk the history, Tab completes the \
        nicknames of the room (learned from /who and from joins, leaves and renames), Ctrl-C \
        clears the line, Ctrl-D on an empty line leaves the room (it sends /quit). Lines typed \
        ahead and pasted lines are all sent, in order; a pasted block (bracketed paste) is sent \
        when you press Enter. A line longer than 512 bytes is sent as several lines. A line from \
        someone else that mentions your nickname shows it highlighted and rings the bell.\n\n\
        In a room with a password, the line after the nickname is the password (typed at \
        \"Password: \" on a terminal, where a wrong one is asked again).\n\n\
        In a room with a password, the line after the nickname is the password (typed at \
        \"Password: \" on a terminal, where a wrong one is asked again).\n\n\
        With standard input from a pipe or a file, chat-client sends each input line, prints each \
        line from the room on standard output, and when the input ends leaves the room, prints \
        what still arrives until the server closes the connection, and exits. For example:\n\n    \
        printf 'alice\\nhello\\n' | chat-client\n\n\
        Everything received is cleaned of terminal escape sequences, control characters and bidi \
        overrides before it is shown.",
    after_long_help = "Exit status: 0 after leaving the room; 1 if the server cannot be reached, \
        refuses the nickname given with --nick (or the first input line), or closes the connection \
        on its own (without --reconnect); 2 for a bad command line.\n\n\
        The protocol, byte for byte, is in PROTOCOL.md in the chat room's repository."
)]
pub struct Options {
    /// The server's address: HOST:PORT, or HOST for port 55555 (an IPv6 address as ::1, [::1]
    /// or [::1]:PORT).
    #[arg(default_value = chat_core::wire::DEFAULT_ADDRESS, value_parser = parse_addr)]
    pub addr: String,

    /// Join as NAME instead of being asked.
    ///
    /// Without it, a terminal asks "Choose your nickname: " (again if the server refuses the name,
    /// showing why), and with piped input the first line is the nickname. If the server refuses
    /// a nickname given here or piped, chat-client prints why and exits with status 1.
    #[arg(long, value_name = "NAME", value_parser = parse_nick)]
    pub nick: Option<String>,

    /// How to talk to the server: `line` or `seed` (see PROTOCOL.md).
    #[arg(long, value_name = "DIALECT", value_parser = parse_dialect, default_value = "line")]
    pub dialect: Dialect,

    /// Put the local time (HH:MM) before each line received: the default on a terminal.
    #[arg(long, overrides_with = "no_timestamps")]
    pub timestamps: bool,

    /// No time before received lines (the default with piped output).
    #[arg(long, overrides_with = "timestamps")]
    pub no_timestamps: bool,

    /// No terminal bell when someone mentions your nickname (it is still highlighted).
    #[arg(long)]
    pub no_bell: bool,

    /// When the server goes away, reconnect (after 1 s, then twice as long each time up to 30 s)
    /// and join again with the same nickname, saying so; Ctrl-D or the end of input stops.
    #[arg(long)]
    pub reconnect: bool,

    /// Seconds of silence before TCP keepalive probes the server: a server that vanished is
    /// noticed about twice that long later (at most 20 s more).
    #[arg(long, value_name = "SECS", default_value = "20", value_parser = crate::keepalive::parse_secs)]
    pub keepalive: Duration,

    #[command(flatten)]
    pub tls: TlsOptions,
}

/// The dialects a terminal client speaks (PROTOCOL.md, "Two dialects"):
/// `line`, UTF-8 lines ending in \n, like nc and telnet, what chat-server
/// speaks best; `seed`, what the Python tutorial's client speaks, for the
/// tutorial's server (the nickname bare, each message sent as "NAME: text"
/// in one write without a terminator, ASCII only).
fn parse_dialect(name: &str) -> Result<Dialect, String> {
    match name.parse() {
        Ok(dialect @ (Dialect::Line | Dialect::Seed)) => Ok(dialect),
        Ok(other) => Err(format!("chat-client does not speak {}: `line` or `seed`", other.name())),
        Err(e) => Err(e.to_string()),
    }
}

/// Rejects a nickname that cannot be sent (empty: a seed client would send
/// nothing at all) or would break the framing; the server judges the rest.
fn parse_nick(nick: &str) -> Result<String, String> {
    if nick.is_empty() {
        return Err("a nickname cannot be empty".into());
    }
    if nick.contains(['\n', '\r']) {
        return Err("a nickname cannot contain a line break".into());
    }
    Ok(nick.to_owned())
}

/// The server's address as `HOST:PORT` (`[V6]:PORT`), the port defaulting
/// to [`DEFAULT_PORT`]; a port that is not one fails here, on the command line.
fn parse_addr(text: &str) -> Result<String, String> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_PORT).to_string());
    }
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr.to_string());
    }
    if let Some(ip) = text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
        let ip: Ipv6Addr = ip.parse().map_err(|_| format!("\"{ip}\" is not an IPv6 address"))?;
        return Ok(SocketAddr::new(ip.into(), DEFAULT_PORT).to_string());
    }
    let (host, port) = match text.rsplit_once(':') {
        None => (text, DEFAULT_PORT),
        Some((host, _)) if host.contains(':') || host.starts_with('[') => {
            return Err(format!("\"{text}\" is not an address: write an IPv6 address with a port as [ADDRESS]:PORT"))
        }
        Some((host, port)) => match port.parse::<u16>() {
            Ok(port @ 1..) => (host, port),
            _ => return Err(format!("\"{port}\" is not a port (1 to 65535)")),
        },
    };
    if host.is_empty() {
        return Err(format!("\"{text}\" names no host"));
    }
    Ok(format!("{host}:{port}"))
}

/// Runs the client; returns the process's exit status.
pub fn run(options: Options) -> std::process::ExitCode {
    match run_inner(options) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(failure) => {
            // Everything above was already flushed line by line; this is the last word.
            eprintln!("chat-client: {failure}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_inner(options: Options) -> Result<(), Failure> {
    let terminal = io::stdin().is_terminal()
        && io::stdout().is_terminal()
        && std::env::var_os("TERM").is_none_or(|term| term != "dumb");
    let (events_tx, events) = mpsc::channel();
    let shared = Arc::new(Shared::default());
    let looks = Looks {
        timestamps: if terminal { !options.no_timestamps } else { options.timestamps },
        mentions: terminal,
        bell: terminal && !options.no_bell,
    };
    let (input, output) = if terminal {
        let (editor, printer) = LineEditor::start(events_tx.clone(), shared.clone()).map_err(Failure::Terminal)?;
        (Input::Editor(editor), Output::Editor(Some(printer)))
    } else {
        spawn_stdin_reader(events_tx.clone());
        (Input::Stdin, Output::Stdout)
    };
    let screen = Screen { output: Arc::new(Mutex::new(output)), looks };
    // The editor is already reading what the user types ahead.
    let stream = match connect(&options.addr, options.keepalive, &options.tls) {
        Ok(stream) => stream,
        Err(failure) => {
            let mut input = input;
            input.stop();
            return Err(failure);
        }
    };
    let mut client = Client {
        addr: options.addr,
        dialect: options.dialect,
        keepalive: options.keepalive,
        tls: options.tls,
        stream,
        events,
        events_tx,
        quitting: Arc::new(AtomicBool::new(false)),
        shared,
        screen,
        input,
    };
    client.spawn_receiver()?;
    let result = client.chat(options.nick, options.reconnect);
    client.input.stop();
    result
}

/// Connects to the first of `addr`'s addresses that answers, with keepalive,
/// and through TLS if `tls` says so (a failed handshake is not retried
/// elsewhere, nor in plain text).
fn connect(addr: &str, keepalive: Duration, tls: &TlsOptions) -> Result<Stream, Failure> {
    let fail = |err| Failure::Connect { addr: addr.to_owned(), err };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for candidate in addr.to_socket_addrs().map_err(fail)? {
        match TcpStream::connect_timeout(&candidate, CONNECT_TIMEOUT) {
            Ok(stream) => {
                if let Err(err) = stream.set_nodelay(true) {
                    warn!("{addr}: cannot set TCP_NODELAY: {err}");
                }
                if let Err(err) = crate::keepalive::enable(&stream, keepalive) {
                    warn!("{addr}: cannot turn on TCP keepalive: {err}");
                }
                return crate::tls_client::connect(stream, addr, tls).map_err(fail);
            }
            Err(err) => last = err,
        }
    }
    Err(fail(last))
}

/// Why the client stops with exit status 1; displayed as the one line on stderr.
#[derive(Debug)]
enum Failure {
    Connect {
        addr: String,
        err: io::Error,
    },
    /// `notice`: why, if the server said so and it was not shown already.
    ClosedByServer {
        addr: String,
        notice: Option<String>,
    },
    Lost {
        addr: String,
        err: io::Error,
    },
    PasswordRefused,
    NickRefused {
        nick: String,
        notice: Option<String>,
    },
    EmptyNick,
    Output(io::Error),
    Input(io::Error),
    Terminal(io::Error),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect { addr, err } => write!(f, "cannot connect to {addr}: {}", describe(err)),
            Failure::ClosedByServer { addr, notice: None } => write!(f, "connection to {addr} closed by the server"),
            Failure::ClosedByServer { addr, notice: Some(notice) } => {
                write!(f, "connection to {addr} closed by the server: {}", strip_notice(notice))
            }
            Failure::Lost { addr, err } => write!(f, "connection to {addr} lost: {}", describe(err)),
            Failure::NickRefused { notice: Some(notice), .. } => f.write_str(strip_notice(notice)),
            Failure::NickRefused { nick, notice: None } => write!(f, "nickname \"{nick}\" refused by the server"),
            Failure::PasswordRefused => f.write_str("the room's password (the line after the nickname) was refused"),
            Failure::EmptyNick => f.write_str("the nickname (the first line of input) is empty"),
            Failure::Output(err) => write!(f, "cannot write to standard output: {}", describe(err)),
            Failure::Input(err) => write!(f, "cannot read standard input: {}", describe(err)),
            Failure::Terminal(err) => write!(f, "terminal: {}", describe(err)),
        }
    }
}

/// A server notice without its `*** ` marker, to quote it in a sentence.
fn strip_notice(notice: &str) -> &str {
    notice.strip_prefix("*** ").unwrap_or(notice)
}

/// An I/O error as the end of a sentence: "connection refused", without the
/// "(os error 111)" and the capital letter of its `Display`.
fn describe(err: &io::Error) -> String {
    let text = err.to_string();
    let text = text.find(" (os error").map_or(text.as_str(), |end| &text[..end]);
    let mut chars = text.chars();
    chars.next().map(|first| first.to_lowercase().chain(chars).collect()).unwrap_or_default()
}

/// Locks a mutex whose holder may have panicked: the data (lines to show, a
/// set of nicknames) is still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the threads know together: our nickname (to spot mentions) and the
/// room's (for Tab), both learned from what the server says.
#[derive(Default)]
struct Shared {
    nick: Mutex<Option<String>>,
    nicks: Mutex<BTreeSet<String>>,
}

// ----- the network thread --------------------------------------------------

/// What the other threads tell the main thread.
#[derive(Debug)]
enum Event {
    /// The server asked for a nickname. `notice` is the `*** ` line right
    /// before the request, if any: why the previous nickname was refused
    /// (not shown yet).
    NickAsked { notice: Option<String> },
    /// The room has a password (or the last one was wrong, with tries
    /// left): the next line is one.
    PasswordAsked,
    /// The server said `Connected to server!`: chat lines may go out now.
    Registered,
    /// Something arrived: after quitting, a script waits until nothing has
    /// for a while.
    Activity,
    /// The connection is over; nothing more comes from the network thread.
    Closed(Closed),
    /// A line the user typed, or a line of standard input.
    Input(String),
    /// The input ended: Ctrl-D on an empty line, or the end of standard input.
    InputEnd,
    /// Reading the input failed.
    InputError(io::Error),
}

/// How the connection ended, as the network thread saw it.
#[derive(Debug)]
enum Closed {
    /// A clean end of stream; `notice` is the last line if it was a `*** `
    /// notice (why) that was not shown.
    ByServer { notice: Option<String> },
    /// A read failed (reset, keepalive timeout).
    Lost(io::Error),
    /// Showing a line failed: stdout is gone, nothing left to do.
    Output(io::Error),
}

/// Where received lines are shown.
enum Output {
    /// Above the line being edited: the editor's printer, until the editor is gone.
    Editor(Option<SyncSender<String>>),
    /// Standard output, flushed after every line so scripts see each at once.
    Stdout,
}

impl Output {
    fn show(&mut self, lines: Vec<String>) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        if let Output::Editor(printer) = self {
            if let Some(sender) = printer {
                // One message per batch: one redraw of the input line. The
                // editor prints it raw, so its lines end in `\r\n`.
                match sender.send(lines.join("\r\n")) {
                    Ok(()) => return Ok(()),
                    // The editor is gone: the lines are ours to print.
                    Err(_) => *printer = None,
                }
            }
        }
        let mut stdout = io::stdout().lock();
        for line in lines {
            writeln!(stdout, "{line}")?;
            stdout.flush()?;
        }
        Ok(())
    }
}

/// How received lines look.
#[derive(Clone, Copy)]
struct Looks {
    /// The local time before each line.
    timestamps: bool,
    /// Our nickname highlighted where someone else's line mentions it.
    mentions: bool,
    /// And the terminal's bell rung.
    bell: bool,
}

/// Shows lines: the network thread's received lines and the main thread's own
/// words, in the order they happen.
#[derive(Clone)]
struct Screen {
    output: Arc<Mutex<Output>>,
    looks: Looks,
}

impl Screen {
    /// Shows lines received, as they should look. `me`: our nickname.
    fn show(&self, lines: Vec<String>, me: Option<&str>) -> io::Result<()> {
        let lines = lines.into_iter().map(|line| self.dress(line, me)).collect();
        lock(&self.output).show(lines)
    }

    /// Shows a line of the client's own (`*** ` like the server's notices).
    fn say(&self, text: &str) {
        if let Err(err) = self.show(vec![format!("*** {text}")], None) {
            debug!("cannot show {text:?}: {err}");
        }
    }

    /// A line with its time stamp, and our nickname highlighted if someone
    /// else's line mentions it.
    fn dress(&self, line: String, me: Option<&str>) -> String {
        let mut line = match me {
            Some(me) if self.looks.mentions => highlight(line, me, self.looks.bell),
            _ => line,
        };
        if self.looks.timestamps {
            line.insert_str(0, &chrono::Local::now().format("%H:%M ").to_string());
        }
        line
    }
}

/// `line` with every mention of `me` in reverse video and a bell, if it is
/// someone else's message (`nick: text` or `* nick action`, `*nick* text`).
fn highlight(line: String, me: &str, bell: bool) -> String {
    let Some(start) = message_text(&line, me) else {
        return line;
    };
    let text = &line[start..];
    let mentions = mentions(text, me);
    if mentions.is_empty() {
        return line;
    }
    let mut out = String::with_capacity(line.len() + mentions.len() * 8 + 1);
    out.push_str(&line[..start]);
    let mut at = 0;
    for (from, to) in mentions {
        out.push_str(&text[at..from]);
        out.push_str("\x1b[7m");
        out.push_str(&text[from..to]);
        out.push_str("\x1b[27m");
        at = to;
    }
    out.push_str(&text[at..]);
    if bell {
        out.push('\x07');
    }
    out
}

/// Where the text of someone else's message starts, if `line` is one.
fn message_text(line: &str, me: &str) -> Option<usize> {
    let sender_and_start = if let Some((sender, _)) = line.split_once(": ").filter(|(s, _)| is_nick(s)) {
        (sender, sender.len() + 2)
    } else if let Some(rest) = line.strip_prefix("* ") {
        let sender = rest.split(' ').next().unwrap_or_default();
        (sender, 2 + sender.len())
    } else if let Some((sender, _)) = line.strip_prefix('*').and_then(|rest| rest.split_once("* ")) {
        (sender, sender.len() + 3)
    } else {
        return None;
    };
    let (sender, start) = sender_and_start;
    (is_nick(sender) && !sender.eq_ignore_ascii_case(me)).then_some(start.min(line.len()))
}

/// Whether `word` can be a nickname in a server's line (no space, no `:`, not empty).
fn is_nick(word: &str) -> bool {
    !word.is_empty() && !word.contains([' ', ':'])
}

/// The byte ranges in `text` where `me` is mentioned as a word (ASCII case ignored).
fn mentions(text: &str, me: &str) -> Vec<(usize, usize)> {
    let word_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut found = Vec::new();
    if me.is_empty() {
        return found;
    }
    let lower = text.to_ascii_lowercase();
    let needle = me.to_ascii_lowercase();
    let mut from = 0;
    while let Some(offset) = lower[from..].find(&needle) {
        let start = from + offset;
        let end = start + needle.len();
        let before = text[..start].chars().next_back();
        let after = text[end..].chars().next();
        if !before.is_some_and(word_char) && !after.is_some_and(word_char) {
            found.push((start, end));
        }
        from = end;
    }
    found
}

/// Starts a network thread for `stream`.
fn spawn_receiver(stream: Stream, dialect: Dialect, screen: Screen, events: Sender<Event>, shared: Arc<Shared>) {
    thread::spawn(move || {
        let closed = receive(stream, dialect, &screen, &events, &shared);
        let _ = events.send(Event::Closed(closed));
    });
}

/// Reads and shows everything the server sends, until the connection ends.
fn receive(mut stream: Stream, dialect: Dialect, screen: &Screen, events: &Sender<Event>, shared: &Shared) -> Closed {
    let mut splitter = Splitter::new(dialect);
    let mut session = Session::new(dialect);
    let mut buf = [0; 4096];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Closed::Lost(err),
        };
        let lines = if n == 0 { splitter.finish() } else { splitter.feed(&buf[..n]) };
        if let Err(err) = deliver(lines, &mut session, screen, events, shared) {
            return Closed::Output(err);
        }
        if n == 0 {
            return Closed::ByServer { notice: session.held.take() };
        }
        let _ = events.send(Event::Activity);
    }
}

/// Shows `lines` in order; an event goes out only after every line before it
/// is shown, so a refusal notice is on screen before the nickname prompt.
fn deliver(
    lines: Vec<String>,
    session: &mut Session,
    screen: &Screen,
    events: &Sender<Event>,
    shared: &Shared,
) -> io::Result<()> {
    let mut shown = Vec::new();
    for line in lines {
        let (show, event) = session.on_line(line);
        for line in &show {
            learn(line, shared);
        }
        shown.extend(show);
        if let Some(event) = event {
            let me = lock(&shared.nick).clone();
            screen.show(std::mem::take(&mut shown), me.as_deref())?;
            let _ = events.send(event);
        }
    }
    let me = lock(&shared.nick).clone();
    screen.show(shown, me.as_deref())
}

/// Learns the room's nicknames (for Tab) and our own new one from a line.
fn learn(line: &str, shared: &Shared) {
    let mut nicks = lock(&shared.nicks);
    if let Some(who) = line.strip_prefix("*** ").and_then(|rest| rest.split_once(" in the room: ")) {
        let listed = who.1.split(" and ").next().unwrap_or_default();
        nicks.extend(listed.split(' ').filter(|n| is_nick(n)).map(String::from));
    } else if let Some((old, new)) = line.strip_prefix("*** ").and_then(|rest| rest.split_once(" is now known as ")) {
        if is_nick(old) && is_nick(new) {
            nicks.remove(old);
            nicks.insert(new.to_owned());
            let mut me = lock(&shared.nick);
            if me.as_deref() == Some(old) {
                *me = Some(new.to_owned());
            }
        }
    } else if let Some(nick) = line.strip_suffix(" joined!").filter(|n| is_nick(n)) {
        nicks.insert(nick.to_owned());
    } else if let Some((nick, rest)) = line.split_once(" left!") {
        if is_nick(nick) && (rest.is_empty() || rest.starts_with(" (")) {
            nicks.remove(nick);
        }
    } else if let Some((nick, _)) = line.split_once(": ").filter(|(n, _)| is_nick(n)) {
        nicks.insert(nick.to_owned());
    }
}

/// Splits what the server sends into cleaned lines.
struct Splitter {
    dialect: Dialect,
    /// Line dialect: the start of a line whose `\n` has not arrived.
    pending: Vec<u8>,
    /// Line dialect: past the first bytes, which may be a bare `NICK`.
    started: bool,
}

impl Splitter {
    fn new(dialect: Dialect) -> Splitter {
        Splitter { dialect, pending: Vec::new(), started: false }
    }

    /// The lines completed by `bytes`.
    fn feed(&mut self, bytes: &[u8]) -> Vec<String> {
        if self.dialect == Dialect::Seed {
            // A chunk is shown as it comes: several messages in one chunk are
            // joined by `\n` (PROTOCOL.md), the tutorial's server adds none.
            let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
            return bytes.split(|&b| b == b'\n').map(clean_line).collect();
        }
        self.pending.extend_from_slice(bytes);
        let mut lines = Vec::new();
        if !self.started {
            // The server's first words are `NICK` with no terminator.
            if NICK_REQUEST.as_bytes().starts_with(&self.pending) {
                if self.pending.len() == NICK_REQUEST.len() {
                    lines.push(NICK_REQUEST.to_owned());
                    self.pending.clear();
                    self.started = true;
                }
                return lines;
            }
            self.started = true;
        }
        let mut start = 0;
        while let Some(end) = self.pending[start..].iter().position(|&b| b == b'\n') {
            lines.push(clean_line(&self.pending[start..start + end]));
            start += end + 1;
        }
        self.pending.drain(..start);
        if self.pending.len() > MAX_PENDING {
            lines.push(clean_line(&self.pending));
            self.pending.clear();
        }
        lines
    }

    /// The unterminated last line, at the end of the stream.
    fn finish(&mut self) -> Vec<String> {
        if self.pending.is_empty() {
            return Vec::new();
        }
        let line = clean_line(&self.pending);
        self.pending.clear();
        vec![line]
    }
}

/// A line's bytes as text that is safe to show (`\r` goes too).
fn clean_line(bytes: &[u8]) -> String {
    let mut line = String::with_capacity(bytes.len());
    chat_core::clean(bytes, |c| line.push(c));
    line
}

/// Follows the registration: what a line means depends on whether we are in the room yet.
struct Session {
    dialect: Dialect,
    registered: bool,
    /// Before we are in the room, a `*** ` notice is held back until the next
    /// line: it is why the server asks for another nickname or closes, and
    /// the main thread reports it (once) then.
    held: Option<String>,
}

impl Session {
    fn new(dialect: Dialect) -> Session {
        Session { dialect, registered: false, held: None }
    }

    /// What to show for `line`, and what to tell the main thread.
    fn on_line(&mut self, line: String) -> (Vec<String>, Option<Event>) {
        if !self.registered && line == NICK_REQUEST {
            return (Vec::new(), Some(Event::NickAsked { notice: self.held.take() }));
        }
        let mut show: Vec<String> = self.held.take().into_iter().collect();
        if !self.registered && self.dialect == Dialect::Line && is_password_request(&line) {
            show.push(line);
            return (show, Some(Event::PasswordAsked));
        }
        if !self.registered && line.starts_with("*** ") {
            self.held = Some(line);
            return (show, None);
        }
        // The tutorial's server may glue `Connected to server!` to `X joined!`.
        let connected = match self.dialect {
            Dialect::Seed => line.contains(CONNECTED),
            _ => line == CONNECTED,
        };
        show.push(line);
        if connected && !self.registered {
            self.registered = true;
            return (show, Some(Event::Registered));
        }
        (show, None)
    }
}

/// Whether `line` asks for the room's password: first, or again after a
/// wrong one (`*** wrong password, 2 tries left`; not `…, closing`).
fn is_password_request(line: &str) -> bool {
    line.as_bytes() == chat_core::wire::PASSWORD_ASK.trim_ascii_end()
        || line.strip_prefix(WRONG_PASSWORD).is_some_and(|rest| rest.ends_with(" left") && rest.starts_with(", "))
}

/// `text` as lines the server takes: pieces of at most [`MAX_LINE`] bytes
/// (`limit` in the seed dialect, which counts the nickname), cut at
/// character boundaries. `/me` and `/msg NICK` pieces each keep their
/// command, so a long private message stays private; other commands are
/// sent whole (the server says if one is too long).
fn split_long(text: &str, limit: usize) -> Vec<String> {
    if text.len() <= limit {
        return vec![text.to_owned()];
    }
    let prefix = if text.starts_with("//") || !text.starts_with('/') {
        ""
    } else {
        let mut words = text.splitn(3, ' ');
        match (words.next().map(str::to_ascii_lowercase).as_deref(), words.next(), words.next()) {
            (Some("/me"), Some(_), _) => &text[..4],
            (Some("/msg"), Some(nick), Some(_)) => &text[..5 + nick.len() + 1],
            _ => return vec![text.to_owned()],
        }
    };
    let room = limit.saturating_sub(prefix.len()).max(4);
    let mut rest = &text[prefix.len()..];
    let mut pieces = Vec::new();
    while !rest.is_empty() {
        let mut end = rest.floor_char_boundary(room.min(rest.len()));
        if end == 0 {
            end = rest.ceil_char_boundary(1);
        }
        pieces.push(format!("{prefix}{}", &rest[..end]));
        rest = &rest[end..];
    }
    pieces
}

// ----- the main thread -----------------------------------------------------

/// Where the user's lines come from.
enum Input {
    Editor(LineEditor),
    Stdin,
}

impl Input {
    /// Shows `text` as the prompt (the editor only).
    fn prompt(&self, text: &str) {
        if let Input::Editor(editor) = self {
            editor.set_prompt(text);
        }
    }

    fn is_terminal(&self) -> bool {
        matches!(self, Input::Editor(_))
    }

    /// Stops reading input and gives the terminal back as it was.
    fn stop(&mut self) {
        if let Input::Editor(editor) = self {
            editor.stop();
        }
    }
}

/// The main thread's side of the connection: everything written to the server.
struct Client {
    addr: String,
    dialect: Dialect,
    keepalive: Duration,
    tls: TlsOptions,
    stream: Stream,
    events: Receiver<Event>,
    events_tx: Sender<Event>,
    /// Set before we quit: the server closing the connection is then expected.
    quitting: Arc<AtomicBool>,
    shared: Arc<Shared>,
    screen: Screen,
    input: Input,
}

/// How long to wait for the server to close after we quit.
#[derive(Clone, Copy)]
enum Wait {
    /// At most this long in all (a user is waiting).
    Total(Duration),
    /// Until nothing has arrived for this long (a script wants every line).
    Idle(Duration),
}

/// Where we are with the current connection.
#[derive(Default)]
struct Registration {
    /// The server asked for a nickname at least once.
    asked: bool,
    /// It asked, and we have no nickname to give yet: the next line is one.
    awaiting_nick: bool,
    /// It asked for the room's password: the next line is it.
    awaiting_password: bool,
    /// It asked for the password at least once.
    password_asked: bool,
    /// In the room.
    registered: bool,
}

impl Client {
    /// Starts the network thread for the current connection.
    fn spawn_receiver(&mut self) -> Result<(), Failure> {
        let reader = self.stream.try_clone().map_err(|err| Failure::Lost { addr: self.addr.clone(), err })?;
        spawn_receiver(reader, self.dialect, self.screen.clone(), self.events_tx.clone(), self.shared.clone());
        Ok(())
    }

    fn nick(&self) -> Option<String> {
        lock(&self.shared.nick).clone()
    }

    /// Registers and chats until the input ends or `/quit`: every line read is
    /// sent, in order; lines read before we are in the room wait for it.
    fn chat(&mut self, given_nick: Option<String>, reconnect: bool) -> Result<(), Failure> {
        let mut queued: VecDeque<String> = VecDeque::new();
        let mut input_ended = false;
        let mut state = Registration::default();
        // Once in the room, a reconnection joins again as the same nickname.
        let mut rejoin = false;
        let wait = if self.input.is_terminal() { Wait::Total(QUIT_WAIT) } else { Wait::Idle(QUIT_WAIT) };
        *lock(&self.shared.nick) = given_nick.clone();
        while !self.is_quitting() {
            match self.next_event()? {
                Event::NickAsked { notice } => {
                    let refused = std::mem::replace(&mut state.asked, true);
                    if refused {
                        if given_nick.is_some() || rejoin || !self.input.is_terminal() {
                            return Err(Failure::NickRefused { nick: self.nick().unwrap_or_default(), notice });
                        }
                        // Typed: show why, and ask again.
                        if let Some(notice) = notice {
                            self.screen.show(vec![notice], None).map_err(Failure::Output)?;
                        }
                    }
                    let name = match self.nick().filter(|_| !refused) {
                        Some(name) => Some(name),
                        None => self.take_nick(&mut queued)?,
                    };
                    match name {
                        Some(name) => self.send_nick(&name)?,
                        None => {
                            state.awaiting_nick = true;
                            self.input.prompt(NICK_PROMPT);
                        }
                    }
                }
                Event::Input(line) if state.awaiting_nick => {
                    queued.push_back(line);
                    if let Some(name) = self.take_nick(&mut queued)? {
                        state.awaiting_nick = false;
                        self.input.prompt("");
                        self.send_nick(&name)?;
                    }
                }
                Event::PasswordAsked
                    if std::mem::replace(&mut state.password_asked, true) && !self.input.is_terminal() =>
                {
                    // A script has one password: the room refused it.
                    return Err(Failure::PasswordRefused);
                }
                Event::PasswordAsked => match queued.pop_front() {
                    Some(password) => self.send_password(&password)?,
                    None => {
                        state.awaiting_password = true;
                        self.input.prompt(PASSWORD_PROMPT);
                    }
                },
                Event::Input(line) if state.awaiting_password => {
                    state.awaiting_password = false;
                    self.input.prompt("");
                    self.send_password(&line)?;
                }
                Event::Input(line) if state.registered => self.send_line(&line)?,
                Event::Input(line) => queued.push_back(line),
                Event::InputEnd => input_ended = true,
                Event::InputError(err) => return Err(Failure::Input(err)),
                Event::Registered => {
                    state.registered = true;
                    rejoin = true;
                    self.input.prompt(CHAT_PROMPT);
                    while let Some(line) = queued.pop_front() {
                        self.send_line(&line)?;
                        if self.is_quitting() {
                            break;
                        }
                    }
                }
                Event::Closed(closed) => {
                    let failure = self.failure(closed);
                    if !(reconnect && rejoin) || matches!(failure, Failure::Output(_)) {
                        return Err(failure);
                    }
                    self.screen.say(&format!("{failure}; reconnecting"));
                    if !self.reconnect(&mut queued)? {
                        return Ok(());
                    }
                    state = Registration::default();
                    self.input.prompt("");
                }
                Event::Activity => {}
            }
            if input_ended && !self.is_quitting() {
                if state.registered {
                    self.quit("/quit")?;
                } else if self.input.is_terminal()
                    || (queued.is_empty() && (state.awaiting_nick || !state.asked) && self.nick().is_none())
                {
                    // Ctrl-D before we are in the room, or the input ended
                    // without a nickname: nothing to quit.
                    return Ok(());
                }
            }
        }
        self.input.stop();
        self.wait_until_closed(wait)
    }

    /// The next queued line as a nickname, if there is one. Piped, an empty
    /// one is an error; typed, it is skipped (the prompt stays).
    fn take_nick(&mut self, queued: &mut VecDeque<String>) -> Result<Option<String>, Failure> {
        while let Some(line) = queued.pop_front() {
            if !line.is_empty() {
                return Ok(Some(line));
            }
            if !self.input.is_terminal() {
                return Err(Failure::EmptyNick);
            }
        }
        Ok(None)
    }

    /// Connects again after the connection was lost, waiting longer after
    /// each failure; lines typed meanwhile wait in `queued`. `false` if the
    /// input ended first (the user gave up).
    fn reconnect(&mut self, queued: &mut VecDeque<String>) -> Result<bool, Failure> {
        let mut delay = RECONNECT_FIRST;
        loop {
            let deadline = Instant::now() + delay;
            loop {
                match self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(Event::Input(line)) => queued.push_back(line),
                    Ok(Event::InputEnd) => return Ok(false),
                    Ok(Event::InputError(err)) => return Err(Failure::Input(err)),
                    Ok(_) => {}
                    Err(RecvTimeoutError::Timeout) => break,
                    Err(RecvTimeoutError::Disconnected) => return Ok(false),
                }
            }
            match connect(&self.addr, self.keepalive, &self.tls) {
                Ok(stream) => {
                    self.stream = stream;
                    self.spawn_receiver()?;
                    self.screen.say(&format!("reconnected to {}", self.addr));
                    return Ok(true);
                }
                Err(failure) => {
                    delay = (delay * 2).min(RECONNECT_MAX);
                    self.screen.say(&format!("{failure}; trying again in {} s", delay.as_secs()));
                }
            }
        }
    }

    /// Answers the server's `NICK`.
    fn send_nick(&mut self, nick: &str) -> Result<(), Failure> {
        let bytes = match self.dialect {
            Dialect::Seed => to_ascii(nick),
            _ => format!("{nick}\n"),
        };
        *lock(&self.shared.nick) = Some(nick.to_owned());
        self.write(bytes.as_bytes())
    }

    /// Answers the server's request for the room's password (line dialect only).
    fn send_password(&mut self, password: &str) -> Result<(), Failure> {
        self.write(format!("{password}\n").as_bytes())
    }

    /// Sends one typed line (or command), as several if it is too long; a
    /// `/quit` also starts waiting for the end.
    fn send_line(&mut self, text: &str) -> Result<(), Failure> {
        if is_quit(text) {
            return self.quit(text);
        }
        match self.dialect {
            // One write per message: the tutorial's server reads one message per recv.
            Dialect::Seed => {
                let nick = self.nick().unwrap_or_default();
                let text = to_ascii(text);
                for piece in split_long(&text, MAX_LINE.saturating_sub(nick.len() + 2)) {
                    self.write(format!("{nick}: {piece}").as_bytes())?;
                }
                Ok(())
            }
            _ => {
                let mut bytes = String::with_capacity(text.len() + 8);
                for piece in split_long(text, MAX_LINE) {
                    bytes.push_str(&piece);
                    bytes.push('\n');
                }
                self.write(bytes.as_bytes())
            }
        }
    }

    /// Leaves the room. A line client sends `command` (`/quit [REASON]`); a
    /// seed client cannot (the tutorial's server would broadcast it), so it
    /// closes its sending side, which both servers take as leaving.
    fn quit(&mut self, command: &str) -> Result<(), Failure> {
        self.quitting.store(true, Ordering::SeqCst);
        let sent = match self.dialect {
            Dialect::Seed => self.stream.shutdown(Shutdown::Write),
            _ => self.stream.write_all(format!("{command}\n").as_bytes()),
        };
        // The server may be gone already; waiting for the end tells which.
        if let Err(err) = sent {
            debug!("quitting: {err}");
        }
        Ok(())
    }

    /// The next event, waiting for it.
    fn next_event(&self) -> Result<Event, Failure> {
        // We hold a sender ourselves: the channel never disconnects.
        self.events.recv().map_err(|_| Failure::ClosedByServer { addr: self.addr.clone(), notice: None })
    }

    fn is_quitting(&self) -> bool {
        self.quitting.load(Ordering::SeqCst)
    }

    fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        match self.stream.write_all(bytes) {
            Ok(()) => Ok(()),
            Err(err) => {
                // The network thread knows better why (a notice, a reset):
                // it is about to say so, unless the socket is merely broken.
                debug!("{}: write failed: {err}", self.addr);
                Ok(())
            }
        }
    }

    /// The failure for a connection that closed while we were still chatting.
    fn failure(&self, closed: Closed) -> Failure {
        let addr = self.addr.clone();
        match closed {
            Closed::ByServer { notice } => Failure::ClosedByServer { addr, notice },
            Closed::Lost(err) => Failure::Lost { addr, err },
            Closed::Output(err) => Failure::Output(err),
        }
    }

    /// After quitting: waits for the server to close the connection, while
    /// the network thread shows what still arrives. The server not closing
    /// in time is not an error: we are leaving anyway.
    fn wait_until_closed(&self, wait: Wait) -> Result<(), Failure> {
        let (Wait::Total(limit) | Wait::Idle(limit)) = wait;
        let mut deadline = Instant::now() + limit;
        loop {
            match self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Event::Closed(Closed::Output(err))) => return Err(Failure::Output(err)),
                Ok(Event::Closed(_)) | Err(RecvTimeoutError::Disconnected) => return Ok(()),
                Ok(Event::Activity) if matches!(wait, Wait::Idle(_)) => deadline = Instant::now() + limit,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    warn!("{} did not close the connection within {limit:?} of quitting", self.addr);
                    return Ok(());
                }
            }
        }
    }
}

/// Whether the server will take `text` as `/quit` (command names ignore case).
fn is_quit(text: &str) -> bool {
    text.strip_prefix('/')
        .and_then(|command| command.split(' ').next())
        .is_some_and(|name| name.eq_ignore_ascii_case("quit"))
}

/// The seed dialect is ASCII: the tutorial's programs decode with `ascii`
/// and fail on anything else, so other characters become `?`.
fn to_ascii(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii() { c } else { '?' }).collect()
}

// ----- the input thread ----------------------------------------------------

/// The line editor, on a thread of its own: each line typed (each line of a
/// paste) becomes an [`Event::Input`].
struct LineEditor {
    prompt: Arc<Mutex<String>>,
    /// Asks the editor to draw the prompt again.
    repaint: Box<dyn Fn() + Send>,
    /// Set with `stopping` to make the editor return and stop.
    interrupt: Arc<AtomicBool>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LineEditor {
    /// Starts the editor; returns it and the sender of its printer.
    fn start(events: Sender<Event>, shared: Arc<Shared>) -> io::Result<(LineEditor, SyncSender<String>)> {
        // No room in the channel: a line handed over is a line the editor
        // took, and will print (see the module's documentation).
        let printer = ExternalPrinter::new(0);
        let sender = printer.sender();
        let interrupt = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        let mut keybindings = default_emacs_keybindings();
        keybindings.add_binding(
            KeyModifiers::NONE,
            KeyCode::Tab,
            ReedlineEvent::UntilFound(vec![ReedlineEvent::Menu("nicknames".into()), ReedlineEvent::MenuNext]),
        );
        let mut editor = Reedline::create()
            .with_external_printer(printer)
            .with_break_signal(interrupt.clone())
            .with_poll_interval(EDITOR_POLL)
            .with_edit_mode(Box::new(Emacs::new(keybindings)))
            .with_completer(Box::new(NickCompleter { shared }))
            .with_quick_completions(true)
            .with_partial_completions(true)
            .with_menu(ReedlineMenu::EngineCompleter(Box::new(ColumnarMenu::default().with_name("nicknames"))))
            .use_bracketed_paste(true);
        let signal = editor.repaint_signal();
        let repaint = Box::new(move || signal.request_repaint());
        let prompt = Arc::new(Mutex::new(String::new()));
        let shown = ChatPrompt(prompt.clone());
        let stop = stopping.clone();
        let thread = thread::Builder::new().name("editor".into()).spawn(move || {
            match typed_before_start(&events) {
                Ok(partial) => editor.run_edit_commands(&[EditCommand::InsertString(partial)]),
                Err(err) => warn!("cannot read what was typed before the editor started: {err}"),
            }
            let event = loop {
                match editor.read_line(&shown) {
                    Ok(Signal::Success(buffer)) => {
                        // A bracketed paste is one buffer: each of its lines is a message.
                        for line in buffer.split('\n') {
                            let _ = events.send(Event::Input(line.strip_suffix('\r').unwrap_or(line).to_owned()));
                        }
                    }
                    Ok(Signal::CtrlD) => break Some(Event::InputEnd),
                    Ok(Signal::ExternalBreak(_)) if stop.load(Ordering::SeqCst) => break None,
                    // Ctrl-C cleared the line; nothing else is ours.
                    Ok(_) => {}
                    Err(err) => break Some(Event::InputError(err)),
                }
            };
            // Dropping the editor drops its printer: lines still to show go
            // straight to the terminal, now back in its normal mode, on a
            // line of their own below the input line.
            drop(editor);
            if event.is_none() {
                let mut stdout = io::stdout().lock();
                if let Err(err) = stdout.write_all(b"\n").and_then(|()| stdout.flush()) {
                    debug!("cannot end the input line: {err}");
                }
            }
            if let Some(event) = event {
                let _ = events.send(event);
            }
        })?;
        let editor = LineEditor { prompt, repaint, interrupt, stopping, thread: Some(thread) };
        Ok((editor, sender))
    }

    fn set_prompt(&self, text: &str) {
        *lock(&self.prompt) = text.to_owned();
        (self.repaint)();
    }

    /// Stops the editor and waits until it has given the terminal back.
    fn stop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopping.store(true, Ordering::SeqCst);
            self.interrupt.store(true, Ordering::SeqCst);
            if thread.join().is_err() {
                warn!("the line editor panicked");
            }
        }
    }
}

/// Sends the lines typed before the editor started, and returns the last,
/// unfinished one. They reached the terminal while it still translated Enter
/// into a line feed, which the editor would take for Ctrl-J.
fn typed_before_start(events: &Sender<Event>) -> io::Result<String> {
    use crossterm::event::{self, Event as Term, KeyCode as Key, KeyEvent, KeyEventKind, KeyModifiers as Mods};
    crossterm::terminal::enable_raw_mode()?;
    let mut line = String::new();
    let mut read = || -> io::Result<()> {
        while event::poll(Duration::ZERO)? {
            match event::read()? {
                Term::Key(KeyEvent { code, modifiers, kind: KeyEventKind::Press, .. }) => match code {
                    Key::Enter => drop(events.send(Event::Input(std::mem::take(&mut line)))),
                    Key::Char('j') if modifiers == Mods::CONTROL => {
                        drop(events.send(Event::Input(std::mem::take(&mut line))))
                    }
                    Key::Char(c) if !modifiers.intersects(Mods::CONTROL | Mods::ALT) => line.push(c),
                    Key::Backspace => drop(line.pop()),
                    _ => {}
                },
                Term::Paste(text) => line.push_str(&text),
                _ => {}
            }
        }
        Ok(())
    };
    let result = read();
    crossterm::terminal::disable_raw_mode()?;
    result.map(|()| line)
}

/// The prompt: set by the main thread as the registration goes.
struct ChatPrompt(Arc<Mutex<String>>);

impl Prompt for ChatPrompt {
    fn render_prompt_left(&self) -> std::borrow::Cow<'_, str> {
        lock(&self.0).clone().into()
    }

    fn render_prompt_right(&self) -> std::borrow::Cow<'_, str> {
        "".into()
    }

    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> std::borrow::Cow<'_, str> {
        "".into()
    }

    fn render_prompt_multiline_indicator(&self) -> std::borrow::Cow<'_, str> {
        "".into()
    }

    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> std::borrow::Cow<'_, str> {
        format!("(search: {}) ", search.term).into()
    }
}

/// Tab: the nicknames of the room that start like the word before the cursor.
struct NickCompleter {
    shared: Arc<Shared>,
}

impl Completer for NickCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> reedline::CompletionResult {
        let pos = line.floor_char_boundary(pos.min(line.len()));
        let start = line[..pos].rfind(' ').map_or(0, |space| space + 1);
        let word = line[start..pos].to_lowercase();
        let me = lock(&self.shared.nick).clone().unwrap_or_default();
        let suggestions: Vec<Suggestion> = lock(&self.shared.nicks)
            .iter()
            .filter(|nick| nick.to_lowercase().starts_with(&word) && !nick.eq_ignore_ascii_case(&me))
            .map(|nick| Suggestion {
                value: nick.clone(),
                span: Span::new(start, pos),
                append_whitespace: true,
                ..Suggestion::default()
            })
            .collect();
        reedline::CompletionResult::fresh(suggestions)
    }
}

/// Reads standard input line by line on its own thread, so the main thread
/// can wait for input and for the network at once.
fn spawn_stdin_reader(events: Sender<Event>) {
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let event = match stdin.read_until(b'\n', &mut buf) {
                Ok(0) => Event::InputEnd,
                Ok(_) => {
                    let line = buf.strip_suffix(b"\n").unwrap_or(&buf);
                    let line = line.strip_suffix(b"\r").unwrap_or(line);
                    Event::Input(String::from_utf8_lossy(line).into_owned())
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => Event::InputError(err),
            };
            let last = !matches!(event, Event::Input(_));
            if events.send(event).is_err() || last {
                return;
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(dialect: Dialect, chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = Splitter::new(dialect);
        let mut lines: Vec<String> = chunks.iter().flat_map(|chunk| splitter.feed(chunk)).collect();
        lines.extend(splitter.finish());
        lines
    }

    #[test]
    fn bare_nick_request_then_lines() {
        let lines = split(Dialect::Line, &[b"NI", b"CK", b"alice joined!\nConnected to server!\n"]);
        assert_eq!(lines, ["NICK", "alice joined!", "Connected to server!"]);
    }

    #[test]
    fn first_line_that_only_starts_like_nick_is_a_line() {
        assert_eq!(split(Dialect::Line, &[b"NICKNAME?\n"]), ["NICKNAME?"]);
        assert_eq!(
            split(Dialect::Line, &[b"*** the room is full, try again later\n"]),
            ["*** the room is full, try again later"]
        );
    }

    #[test]
    fn lines_are_cleaned_and_split_across_reads() {
        let lines = split(Dialect::Line, &[b"NICK", b"bob: hi \x1b]52;c;eA==\x07the", b"re\r\nbob: \xff\n", b"tail"]);
        assert_eq!(lines, ["NICK", "bob: hi there", "bob: \u{fffd}", "tail"]);
    }

    #[test]
    fn endless_line_is_cut() {
        let long = vec![b'a'; MAX_PENDING + 1];
        let lines = split(Dialect::Line, &[b"NICK", &long, b"b\n"]);
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], "b");
    }

    #[test]
    fn seed_chunks_are_shown_as_they_come() {
        let lines = split(Dialect::Seed, &[b"NICK", b"bob joined!Connected to server!", b"a: x\nb: \x1b[2Jy"]);
        assert_eq!(lines, ["NICK", "bob joined!Connected to server!", "a: x", "b: y"]);
    }

    #[test]
    fn session_follows_registration() {
        let mut session = Session::new(Dialect::Line);
        let shown = |(show, _): &(Vec<String>, Option<Event>)| show.clone();
        assert!(
            matches!(session.on_line("NICK".into()), (ref s, Some(Event::NickAsked { notice: None })) if s.is_empty())
        );
        // A refusal is held back: it comes with the next request, to be told once.
        let refused = "*** nickname \"a\" refused: it is taken".to_owned();
        assert!(matches!(session.on_line(refused.clone()), (ref s, None) if s.is_empty()));
        match session.on_line("NICK".into()) {
            (show, Some(Event::NickAsked { notice })) if show.is_empty() => assert_eq!(notice, Some(refused)),
            other => panic!("{other:?}"),
        }
        assert_eq!(shown(&session.on_line("b joined!".into())), ["b joined!"]);
        assert!(matches!(session.on_line(CONNECTED.into()), (_, Some(Event::Registered))));
        // In the room, `NICK` is just a line, and notices are shown at once.
        assert_eq!(shown(&session.on_line("NICK".into())), ["NICK"]);
        assert_eq!(shown(&session.on_line("*** 2 in the room: a b".into())), ["*** 2 in the room: a b"]);
    }

    #[test]
    fn password_requests_are_told_from_the_last_refusal() {
        assert!(is_password_request("*** this room has a password: send it as your next line"));
        assert!(is_password_request("*** wrong password, 2 tries left"));
        assert!(is_password_request("*** wrong password, 1 try left"));
        assert!(!is_password_request("*** wrong password, closing"));
        let mut session = Session::new(Dialect::Line);
        assert!(
            matches!(session.on_line("*** this room has a password: send it as your next line".into()), (ref s, Some(Event::PasswordAsked)) if s.len() == 1)
        );
    }

    #[test]
    fn long_lines_are_cut_at_character_boundaries() {
        let text: String = "é".repeat(650);
        let pieces = split_long(&text, MAX_LINE);
        assert_eq!(pieces.iter().map(String::len).collect::<Vec<_>>(), [512, 512, 276]);
        assert_eq!(pieces.concat(), text);
        let private = format!("/msg bob {}", "x".repeat(600));
        let pieces = split_long(&private, MAX_LINE);
        assert_eq!(pieces.len(), 2);
        assert!(pieces.iter().all(|p| p.starts_with("/msg bob ") && p.len() <= MAX_LINE), "{pieces:?}");
        assert_eq!(split_long("/nick a", MAX_LINE), ["/nick a"]);
        let short = "hello".to_owned();
        assert_eq!(split_long(&short, MAX_LINE), [short]);
    }

    #[test]
    fn addresses_default_the_port_and_reject_bad_ones() {
        assert_eq!(parse_addr("::1").as_deref(), Ok("[::1]:55555"));
        assert_eq!(parse_addr("[::1]").as_deref(), Ok("[::1]:55555"));
        assert_eq!(parse_addr("[::1]:7").as_deref(), Ok("[::1]:7"));
        assert_eq!(parse_addr("localhost").as_deref(), Ok("localhost:55555"));
        assert_eq!(parse_addr("127.0.0.1:80").as_deref(), Ok("127.0.0.1:80"));
        assert_eq!(parse_addr("127.0.0.1:99999"), Err("\"99999\" is not a port (1 to 65535)".to_owned()));
        assert!(parse_addr("fe80::1:x").is_err());
        assert!(parse_addr(":80").is_err());
    }

    #[test]
    fn mentions_of_our_nickname_are_highlighted_in_others_lines_only() {
        assert_eq!(highlight("bob: hi Alice!".into(), "alice", true), "bob: hi \x1b[7mAlice\x1b[27m!\x07");
        assert_eq!(highlight("* bob pokes alice".into(), "alice", false), "* bob pokes \x1b[7malice\x1b[27m");
        assert_eq!(highlight("alice: I am alice".into(), "alice", true), "alice: I am alice");
        assert_eq!(highlight("bob: malice".into(), "alice", true), "bob: malice");
        assert_eq!(highlight("alice joined!".into(), "alice", true), "alice joined!");
    }

    #[test]
    fn the_room_is_learned_from_what_the_server_says() {
        let shared = Shared::default();
        *lock(&shared.nick) = Some("me".into());
        for line in ["*** 3 in the room: me bob carol", "dave joined!", "bob left! (bye)", "*** me is now known as you"]
        {
            learn(line, &shared);
        }
        let nicks: Vec<String> = lock(&shared.nicks).iter().cloned().collect();
        assert_eq!(nicks, ["carol", "dave", "you"]);
        assert_eq!(lock(&shared.nick).as_deref(), Some("you"));
        let mut completer = NickCompleter { shared: Arc::new(shared) };
        let values: Vec<String> =
            completer.complete("hi CA", 5).suggestions().iter().map(|s| s.value.clone()).collect();
        assert_eq!(values, ["carol"]);
    }

    #[test]
    fn quit_commands() {
        assert!(is_quit("/quit"));
        assert!(is_quit("/QUIT bye now"));
        assert!(!is_quit("//quit"));
        assert!(!is_quit("/quitter"));
        assert!(!is_quit("quit"));
    }

    #[test]
    fn errors_read_as_sentences() {
        let err = io::Error::from_raw_os_error(111);
        assert_eq!(describe(&err), "connection refused");
        let failure = Failure::ClosedByServer {
            addr: "127.0.0.1:1".into(),
            notice: Some("*** the room is full, try again later".into()),
        };
        assert_eq!(
            failure.to_string(),
            "connection to 127.0.0.1:1 closed by the server: the room is full, try again later"
        );
    }
}
