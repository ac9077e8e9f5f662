//! `chat-client`: a terminal and script client for the chat room.
//!
//! Two threads share the connection. A *network thread* reads the socket,
//! splits what arrives into lines, cleans each with [`chat_core::clean`] (the
//! server may not be ours, and a line is about to reach a terminal) and shows
//! it; it tells the *main thread* about the few things that change what the
//! main thread does next ([`Event`]): the server asked for a nickname, the
//! client is in the room, the connection closed. The main thread owns the
//! user's side: the line editor on a terminal, standard input otherwise, and
//! every write to the socket.
//!
//! On a terminal, lines are shown through rustyline's external printer, so a
//! line that arrives while the user types appears above the input line and
//! leaves it intact. rustyline cannot be told from another thread to stop
//! reading, so when the server closes the connection the network thread
//! raises `SIGINT`: the editor catches it, `readline` returns, and the main
//! thread finds out why and exits with the terminal restored.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, IsTerminal, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use log::{debug, warn};
use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};

use crate::tls_client::Stream;

/// How long to try each of the server's addresses before giving up on it.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for the server to close the connection after we quit:
/// on a terminal in all, with piped input since the last thing that arrived
/// (the server reads a flooding script's lines slowly, and answers each one).
const QUIT_WAIT: Duration = Duration::from_secs(2);

/// How long the network thread lets the line editor show the last lines it
/// was handed before interrupting it: the editor handles an interruption
/// before pending lines, and would drop them.
const PRINT_GRACE: Duration = Duration::from_millis(100);

/// The longest incoming line kept whole (a server's lines are at most 512
/// bytes plus a nickname); a longer one is shown in pieces, so a server that
/// never sends `\n` cannot make the client grow without bound.
const MAX_PENDING: usize = 16 * 1024;

/// What the server says when a nickname is accepted.
const CONNECTED: &str = "Connected to server!";

/// What the server says to ask for a nickname.
const NICK_REQUEST: &str = "NICK";

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "chat-client",
    version,
    about = "Chat in a chat room: lines you type are sent, lines the room sends are shown.",
    long_about = "Chat in a chat room: lines you type are sent, lines the room sends are shown.\n\n\
        On a terminal, chat-client is a line editor (arrow keys for history): lines from the room \
        appear above the line you are typing. Ctrl-D or Ctrl-C leaves the room (it sends /quit).\n\n\
        With standard input from a pipe or a file, chat-client sends each input line, prints each \
        line from the room on standard output, and when the input ends leaves the room, prints \
        what still arrives until the server closes the connection, and exits. For example:\n\n    \
        printf 'alice\\nhello\\n' | chat-client\n\n\
        Everything received is cleaned of terminal escape sequences, control characters and bidi \
        overrides before it is shown.",
    after_long_help = "Exit status: 0 after leaving the room; 1 if the server cannot be reached, \
        refuses the nickname given with --nick (or the first input line), or closes the connection \
        on its own; 2 for a bad command line.\n\n\
        The protocol, byte for byte, is in PROTOCOL.md in the chat room's repository."
)]
pub struct Options {
    /// The server's address: HOST:PORT, or HOST for port 55555.
    #[arg(default_value = "127.0.0.1:55555")]
    pub addr: String,

    /// Join as NAME instead of being asked.
    ///
    /// Without it, a terminal asks "Choose your nickname: " (again if the server refuses the name,
    /// showing why), and with piped input the first line is the nickname. If the server refuses
    /// a nickname given here or piped, chat-client prints why and exits with status 1.
    #[arg(long, value_name = "NAME", value_parser = parse_nick)]
    pub nick: Option<String>,

    /// How to talk to the server (see PROTOCOL.md).
    #[arg(long, value_enum, default_value_t = Dialect::Line)]
    pub dialect: Dialect,

    #[command(flatten)]
    pub tls: crate::tls_client::TlsOptions,
}

/// The two ways a client can talk to the chat server (PROTOCOL.md, "Two dialects").
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Dialect {
    /// UTF-8 lines ending in \n, like nc and telnet: what chat-server speaks best.
    Line,
    /// What the Python tutorial's client speaks, for the tutorial's server (chat-server speaks
    /// it too): the nickname bare, each message sent as "NAME: text" in one write without a
    /// terminator, ASCII only.
    Seed,
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
    // A bare host means the tutorial's port.
    let addr = if options.addr.contains(':') { options.addr.clone() } else { format!("{}:55555", options.addr) };
    let stream = connect(&addr).map_err(|err| Failure::Connect { addr: addr.clone(), err })?;
    if let Err(err) = stream.set_nodelay(true) {
        warn!("cannot set TCP_NODELAY: {err}");
    }
    let stream = crate::tls_client::connect(stream, &addr, &options.tls)
        .map_err(|err| Failure::Connect { addr: addr.clone(), err })?;
    let reader = stream.try_clone().map_err(|err| Failure::Lost { addr: addr.clone(), err })?;
    let (events_tx, events) = mpsc::channel();
    let quitting = Arc::new(AtomicBool::new(false));
    let mut client = Client { addr, dialect: options.dialect, stream, events, quitting: quitting.clone(), nick: None };

    if io::stdin().is_terminal() && io::stdout().is_terminal() {
        match Terminal::new() {
            Ok((mut terminal, printer)) => {
                spawn_receiver(reader, options.dialect, Output::Terminal(printer), events_tx, quitting, true);
                return terminal.chat(&mut client, options.nick);
            }
            // A terminal rustyline does not support (TERM=dumb): read it like a pipe.
            Err(err) => debug!("no line editor ({err}), reading standard input as lines"),
        }
    }
    spawn_stdin_reader(events_tx.clone());
    spawn_receiver(reader, options.dialect, Output::Stdout, events_tx, quitting, false);
    chat_piped(&mut client, options.nick)
}

/// Connects to the first of `addr`'s addresses that answers.
fn connect(addr: &str) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for candidate in addr.to_socket_addrs()? {
        match TcpStream::connect_timeout(&candidate, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(err) => last = err,
        }
    }
    Err(last)
}

/// Why the client stops with exit status 1; displayed as the one line on stderr.
#[derive(Debug)]
enum Failure {
    Connect { addr: String, err: io::Error },
    ClosedByServer { addr: String, notice: Option<String> },
    Lost { addr: String, err: io::Error },
    NickRefused { nick: String, notice: Option<String> },
    EmptyNick,
    Output(io::Error),
    Input(io::Error),
    Terminal(ReadlineError),
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
            Failure::EmptyNick => f.write_str("the nickname (the first line of input) is empty"),
            Failure::Output(err) => write!(f, "cannot write to standard output: {}", describe(err)),
            Failure::Input(err) => write!(f, "cannot read standard input: {}", describe(err)),
            Failure::Terminal(err) => write!(f, "terminal: {err}"),
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

// ----- the network thread --------------------------------------------------

/// What the other threads tell the main thread.
#[derive(Debug)]
enum Event {
    /// The server asked for a nickname. `notice` is the `*** ` line right
    /// before the request, if any: why the previous nickname was refused.
    NickAsked { notice: Option<String> },
    /// The server said `Connected to server!`: chat lines may go out now.
    Registered,
    /// Something arrived while we wait for the server to close after quitting.
    Activity,
    /// The connection is over; nothing more comes from the network thread.
    Closed(Closed),
    /// A line of standard input (piped mode).
    Input(String),
    /// Standard input ended (piped mode).
    InputEnd,
    /// Standard input failed (piped mode).
    InputError(io::Error),
}

/// How the connection ended, as the network thread saw it.
#[derive(Debug)]
enum Closed {
    /// A clean end of stream; `notice` is the last line if it was a `*** ` notice (why).
    ByServer { notice: Option<String> },
    /// A read failed (reset, timeout).
    Lost(io::Error),
    /// Showing a line failed: stdout is gone, nothing left to do.
    Output(io::Error),
}

/// Where received lines are shown.
enum Output {
    /// Above the line being edited (or straight to the terminal between edits).
    Terminal(Box<dyn ExternalPrinter + Send>),
    /// Standard output, flushed after every line so scripts see each at once.
    Stdout,
}

impl Output {
    fn show(&mut self, lines: &[String]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        match self {
            // One message per batch: one redraw of the input line. The
            // printer writes it raw when the editor is not reading, so it
            // carries its own final newline.
            Output::Terminal(printer) => {
                let mut text = lines.join("\n");
                text.push('\n');
                printer.print(text).map_err(io::Error::other)
            }
            Output::Stdout => {
                let mut stdout = io::stdout().lock();
                for line in lines {
                    writeln!(stdout, "{line}")?;
                    stdout.flush()?;
                }
                Ok(())
            }
        }
    }
}

/// Starts the network thread. `interrupt_editor`: on a terminal, interrupt
/// the line editor when the server closes the connection on its own.
fn spawn_receiver(
    stream: Stream,
    dialect: Dialect,
    output: Output,
    events: Sender<Event>,
    quitting: Arc<AtomicBool>,
    interrupt_editor: bool,
) {
    thread::spawn(move || {
        let closed = receive(stream, dialect, output, &events, &quitting);
        let _ = events.send(Event::Closed(closed));
        if interrupt_editor && !quitting.load(Ordering::SeqCst) {
            thread::sleep(PRINT_GRACE);
            if let Err(err) = signal_hook::low_level::raise(signal_hook::consts::SIGINT) {
                warn!("cannot interrupt the line editor: {err}");
            }
        }
    });
}

/// Reads and shows everything the server sends, until the connection ends.
fn receive(
    mut stream: Stream,
    dialect: Dialect,
    mut output: Output,
    events: &Sender<Event>,
    quitting: &AtomicBool,
) -> Closed {
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
        if let Err(err) = deliver(lines, &mut session, &mut output, events) {
            return Closed::Output(err);
        }
        if n == 0 {
            return Closed::ByServer { notice: session.last_notice.take() };
        }
        if quitting.load(Ordering::SeqCst) {
            let _ = events.send(Event::Activity);
        }
    }
}

/// Shows `lines` in order; an event goes out only after every line before it
/// is shown, so a refusal notice is on screen before the nickname prompt.
fn deliver(lines: Vec<String>, session: &mut Session, output: &mut Output, events: &Sender<Event>) -> io::Result<()> {
    let mut shown = Vec::new();
    for line in lines {
        let (show, event) = session.on_line(line);
        shown.extend(show);
        if let Some(event) = event {
            output.show(&shown)?;
            shown.clear();
            let _ = events.send(event);
        }
    }
    output.show(&shown)
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
    /// The last line, if it was a `*** ` notice: the reason for what comes next.
    last_notice: Option<String>,
}

impl Session {
    fn new(dialect: Dialect) -> Session {
        Session { dialect, registered: false, last_notice: None }
    }

    /// What to show for `line`, and what to tell the main thread.
    fn on_line(&mut self, line: String) -> (Option<String>, Option<Event>) {
        if !self.registered && line == NICK_REQUEST {
            return (None, Some(Event::NickAsked { notice: self.last_notice.take() }));
        }
        // The tutorial's server may glue `Connected to server!` to `X joined!`.
        let connected = match self.dialect {
            Dialect::Line => line == CONNECTED,
            Dialect::Seed => line.contains(CONNECTED),
        };
        self.last_notice = line.starts_with("*** ").then(|| line.clone());
        if connected && !self.registered {
            self.registered = true;
            return (Some(line), Some(Event::Registered));
        }
        (Some(line), None)
    }
}

// ----- the main thread -----------------------------------------------------

/// The main thread's side of the connection: everything written to the server.
struct Client {
    addr: String,
    dialect: Dialect,
    stream: Stream,
    events: Receiver<Event>,
    /// Set before we quit: the server closing the connection is then expected.
    quitting: Arc<AtomicBool>,
    /// The nickname we registered with: the seed dialect puts it before every message.
    nick: Option<String>,
}

/// How long to wait for the server to close after we quit.
#[derive(Clone, Copy)]
enum Wait {
    /// At most this long in all (a user is waiting).
    Total(Duration),
    /// Until nothing has arrived for this long (a script wants every line).
    Idle(Duration),
}

impl Client {
    /// Answers the server's `NICK`.
    fn send_nick(&mut self, nick: &str) -> Result<(), Failure> {
        let bytes = match self.dialect {
            Dialect::Line => format!("{nick}\n"),
            Dialect::Seed => to_ascii(nick),
        };
        self.nick = Some(nick.to_owned());
        self.write(bytes.as_bytes())
    }

    /// Sends one chat line (or command); a `/quit` also starts waiting for the end.
    fn send_line(&mut self, text: &str) -> Result<(), Failure> {
        if is_quit(text) {
            return self.quit(text);
        }
        let bytes = match self.dialect {
            Dialect::Line => format!("{text}\n"),
            // One write per message: the tutorial's server reads one message per recv.
            Dialect::Seed => to_ascii(&format!("{}: {text}", self.nick.as_deref().unwrap_or_default())),
        };
        self.write(bytes.as_bytes())
    }

    /// Leaves the room. A line client sends `command` (`/quit [REASON]`); a
    /// seed client cannot (the tutorial's server would broadcast it), so it
    /// closes its sending side, which both servers take as leaving.
    fn quit(&mut self, command: &str) -> Result<(), Failure> {
        self.quitting.store(true, Ordering::SeqCst);
        let sent = match self.dialect {
            Dialect::Line => self.stream.write_all(format!("{command}\n").as_bytes()),
            Dialect::Seed => self.stream.shutdown(Shutdown::Write),
        };
        // The server may be gone already; waiting for the end tells which.
        if let Err(err) = sent {
            debug!("quitting: {err}");
        }
        Ok(())
    }

    /// The next event, waiting for it.
    fn next_event(&self) -> Result<Event, Failure> {
        // The network thread says `Closed` before it hangs up: after that
        // event nobody asks again.
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
                let deadline = Instant::now() + Duration::from_millis(500);
                while let Ok(event) = self.events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    if let Event::Closed(closed) = event {
                        return Err(self.failure(closed));
                    }
                }
                Err(Failure::Lost { addr: self.addr.clone(), err })
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

    /// Fails if the connection has closed (without waiting).
    fn check_closed(&self) -> Result<(), Failure> {
        while let Ok(event) = self.events.try_recv() {
            if let Event::Closed(closed) = event {
                return Err(self.failure(closed));
            }
        }
        Ok(())
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

/// The line editor, for a terminal.
struct Terminal {
    editor: DefaultEditor,
}

impl Terminal {
    /// The editor, and the printer that shows lines above its input line.
    fn new() -> rustyline::Result<(Terminal, Box<dyn ExternalPrinter + Send>)> {
        // The editor catches SIGINT while it exists; this handler catches the
        // network thread's SIGINT at any other time, so it never kills us.
        if let Err(err) = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::new(AtomicBool::new(false))) {
            warn!("cannot handle SIGINT: {err}");
        }
        let mut editor = DefaultEditor::new()?;
        let printer = editor.create_external_printer()?;
        Ok((Terminal { editor }, Box::new(printer)))
    }

    /// Registers (asking for a nickname unless one was given), then sends
    /// each line typed until Ctrl-D, Ctrl-C or `/quit`.
    fn chat(&mut self, client: &mut Client, nick: Option<String>) -> Result<(), Failure> {
        let mut asked = false;
        loop {
            let event = client.next_event()?;
            match event {
                Event::NickAsked { notice } => {
                    let name = match (&nick, asked) {
                        (Some(name), false) => name.clone(),
                        (Some(name), true) => return Err(Failure::NickRefused { nick: name.clone(), notice }),
                        (None, _) => match self.ask_nick(client)? {
                            Some(name) => name,
                            // Not in the room yet: nothing to quit.
                            None => return Ok(()),
                        },
                    };
                    asked = true;
                    client.send_nick(&name)?;
                }
                Event::Registered => break,
                Event::Closed(closed) => return Err(client.failure(closed)),
                _ => {}
            }
        }
        while !client.is_quitting() {
            let Some(line) = self.read("> ", client)? else {
                client.quit("/quit")?;
                break;
            };
            if let Err(err) = self.editor.add_history_entry(line.as_str()) {
                debug!("history: {err}");
            }
            // A paste may hold several lines: each is a message.
            for part in line.split('\n') {
                client.send_line(part.strip_suffix('\r').unwrap_or(part))?;
                if client.is_quitting() {
                    break;
                }
            }
        }
        client.wait_until_closed(Wait::Total(QUIT_WAIT))
    }

    /// A nickname from the user, asked until one is not empty (the server
    /// would refuse it; a seed client could not even send it); `None` for
    /// Ctrl-D or Ctrl-C.
    fn ask_nick(&mut self, client: &Client) -> Result<Option<String>, Failure> {
        loop {
            let Some(line) = self.read("Choose your nickname: ", client)? else {
                return Ok(None);
            };
            // Pasted lines: the first is the nickname.
            let name = line.split(['\r', '\n']).next().unwrap_or_default();
            if !name.is_empty() {
                return Ok(Some(name.to_owned()));
            }
        }
    }

    /// A line from the user; `None` for Ctrl-D or Ctrl-C. Fails instead if
    /// the connection closed (the network thread interrupts the editor then).
    fn read(&mut self, prompt: &str, client: &Client) -> Result<Option<String>, Failure> {
        client.check_closed()?;
        match self.editor.readline(prompt) {
            Ok(line) => Ok(Some(line)),
            Err(ReadlineError::Eof | ReadlineError::Interrupted) => {
                client.check_closed()?;
                Ok(None)
            }
            Err(err) => Err(Failure::Terminal(err)),
        }
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

/// Piped mode: the first input line is the nickname unless one was given;
/// lines typed before the server accepts it wait, so none is taken for a
/// second nickname attempt. At the end of input, quit and show the rest.
fn chat_piped(client: &mut Client, nick: Option<String>) -> Result<(), Failure> {
    let mut queued = VecDeque::new();
    let mut input_ended = false;
    let mut asked = false;
    let mut awaiting_nick = false;
    let mut registered = false;
    while !client.is_quitting() {
        let event = client.next_event()?;
        match event {
            Event::NickAsked { notice } => {
                if asked {
                    let nick = client.nick.clone().unwrap_or_default();
                    return Err(Failure::NickRefused { nick, notice });
                }
                asked = true;
                match nick.clone().or_else(|| queued.pop_front()) {
                    Some(name) if name.is_empty() => return Err(Failure::EmptyNick),
                    Some(name) => client.send_nick(&name)?,
                    None => awaiting_nick = true,
                }
            }
            Event::Input(line) if awaiting_nick && line.is_empty() => return Err(Failure::EmptyNick),
            Event::Input(line) if awaiting_nick => {
                awaiting_nick = false;
                client.send_nick(&line)?;
            }
            Event::Input(line) if registered => client.send_line(&line)?,
            Event::Input(line) => queued.push_back(line),
            Event::InputEnd => input_ended = true,
            Event::InputError(err) => return Err(Failure::Input(err)),
            Event::Registered => {
                registered = true;
                while let Some(line) = queued.pop_front() {
                    client.send_line(&line)?;
                    if client.is_quitting() {
                        break;
                    }
                }
            }
            Event::Closed(closed) => return Err(client.failure(closed)),
            Event::Activity => {}
        }
        if input_ended && !client.is_quitting() {
            if registered {
                client.quit("/quit")?;
            } else if nick.is_none() && queued.is_empty() && (awaiting_nick || !asked) {
                // The input ended without a nickname: never in the room, nothing to quit.
                return Ok(());
            }
        }
    }
    client.wait_until_closed(Wait::Idle(QUIT_WAIT))
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
        assert!(matches!(session.on_line("NICK".into()), (None, Some(Event::NickAsked { notice: None }))));
        let refused = "*** nickname \"a\" refused: it is taken".to_owned();
        assert!(matches!(session.on_line(refused.clone()), (Some(_), None)));
        match session.on_line("NICK".into()) {
            (None, Some(Event::NickAsked { notice })) => assert_eq!(notice, Some(refused)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(session.on_line("b joined!".into()), (Some(_), None)));
        assert!(matches!(session.on_line(CONNECTED.into()), (Some(_), Some(Event::Registered))));
        // In the room, `NICK` is just a line.
        assert!(matches!(session.on_line("NICK".into()), (Some(_), None)));
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
