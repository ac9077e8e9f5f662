//! `chat-bench`: a load generator for the chat room that checks every
//! delivery.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use bench::report::round;
use bench::server::{Cpu, Memory, Reading};
use bench::{Ceiling, Dialect, Plan, Report};
use clap::Parser;
use serde::Serialize;

const ABOUT: &str = "Load generator for the chat room: many clients, every delivery checked.";

const LONG_ABOUT: &str = "\
Load generator for the chat room: many clients, every delivery checked.

Opens CLIENTS connections to a running server at ADDR, registers them all
(in either dialect), then has each speaker send MESSAGES messages of SIZE
bytes, as fast as its socket takes them or at RATE messages a second. All
clients live in one thread of this process, over one poller.

Several ADDRs are the servers of one room (joined over a broker): client i
connects to the (i mod N)th address, and every client must still receive
every message, whichever server its sender is on. The report gives the
clients per address.

Every message is `[{nick} {seq} {micros} ....{check}]`, padded with dots to
exactly SIZE bytes: its sender, its number, when it was written (microseconds
since the bench started: one process, one clock), and 4 hex digits hashing
the three, so a message spliced from two halves is caught. Every client must
receive every message, its own included, exactly once, in each sender's
order, under the server's `{nick}: ` prefix naming the sender embedded in
the payload, and intact. The report counts:

  deliveries     messages received intact, correctly attributed, once
  lost           expected deliveries that never arrived intact
  duplicated     a message a client had already received
  reordered      a message that arrived after a later one of its sender
  misattributed  an intact message under another nick's prefix
  torn           an entry that looks like a message but does not parse or
                 has the wrong length (a torn message is usually lost too)
  other lines    anything else after registration (server notices)
  closed         clients the server closed during the run

with deliveries/s (first message sent to last delivery) and the latency from
sending to receipt at the other clients (a sender's own echo is not counted):
p50, p90, p99 and max.

--same-order also checks that every client received the messages in one
and the same order: all clients are registered before the first message,
so each one's sequence (every sender's lines interleaved) must be the
same. One server gives that by construction; servers over a broker must
agree on it. A violation names the clients and the first line of the run
where their orders differ, with the two messages each received there. A
client out of step because of a lost line is counted lost, and not
checked further for order. The order is kept once (8 bytes a line), not
per client.

The server is not the bench's to control. chat-server throttles every client
by default (5 lines at once, then 2 a second): run it with `--no-throttle`
for a benchmark, and with `--capacity` above CLIENTS. The tutorial's Python
server (tests/seed/server.py) speaks only the seed dialect.

Dialects: `line` sends `{nick}\\n` after `NICK` and waits for
`Connected to server!\\n`; each message is one line. `seed` sends the bare
nickname (chat-server then waits its 250 ms grace period) and waits for
`Connected to server!`; each message is `{nick}: {text}` in one write, no
terminator. Seed clients receive lines with no terminator (several in one
write joined by `\\n`); the bench splits them at each payload's closing `]`.
`web` is a browser's WebSocket: ADDR is then the server's web listener
(chat-server --web ADDR); each client sends `GET /ws` with the upgrade
headers and a random Sec-WebSocket-Key, checks the `101` and its
Sec-WebSocket-Accept, then sends its nickname and each message as one
masked text frame, and reads the server's text frames as lines (the same
checks as a line client's).

Modes:
  (default)      the run above
  --idle [N]     N clients (default 10000) register and stay idle; with
                 --server-pid, the server's resident memory (VmRSS) is read
                 before connecting and once all N are registered, and
                 (after - before) / N is reported per client. Then only
                 --speakers K (default 10) of them say --messages (default
                 1) line each, and all N must receive all K lines: N x K
                 deliveries instead of N x N. Kernel socket buffers are not
                 in the server's VmRSS.
  --ceiling      no server: this machine's loopback limit for the same
                 CLIENTS, MESSAGES and SIZE. CLIENTS socket pairs; a writer
                 thread (as chat-server: TCP_NODELAY) sends every message to
                 every receiver, (a) one line per write, then (b) BATCH lines
                 per write; a reader thread drains them. Reports
                 deliveries/s for both.
  --with-ceiling after a default run, measure the ceiling too and report the
                 server's deliveries/s as a fraction of both figures.

With --server-pid, in any mode but --ceiling, the server's CPU time (utime +
stime of /proc/PID/stat, in 10 ms ticks) is read just before the first
message and at the end of the run, and reported in all and per 1,000
deliveries; the bench's own CPU time too (it is one thread: near 1,000 ms
a second, latencies are partly its own). A scale run is a paced run with a
few speakers among many clients: --clients 10000 --speakers 10 --rate 2
--messages 20 --server-pid PID.

The open-file soft limit is raised to the hard limit. The bench's sockets
keep the system's defaults (Nagle and delayed ACKs on) unless --nodelay.";

const AFTER_LONG_HELP: &str = "\
Output: a table on stdout; with --json, one JSON line on stdout and the table
on stderr. A progress bar appears on stderr when a run takes over 2 s and
stderr is a terminal.

Exit status: 0 when every check passed; 1 when anything was lost,
duplicated, reordered, misattributed or torn, two clients saw different
orders (--same-order), a client was closed, a client could not register,
or the run timed out (the report then shows what arrived); 2 for a bad
command line.

Examples:
  chat-server --listen 127.0.0.1:55555 --no-throttle --capacity 11000 &
  chat-bench --clients 100 --messages 100 --size 64
  chat-bench --clients 100 --messages 100 --rate 10 --json
  chat-bench --dialect seed --clients 50
  chat-bench 127.0.0.1:55555 127.0.0.1:55556 --clients 300 --same-order
  chat-server --listen 127.0.0.1:55555 --web 127.0.0.1:8080 --no-throttle &
  chat-bench 127.0.0.1:8080 --dialect web --clients 100
  chat-bench --idle 10000 --server-pid $(pidof chat-server)
  chat-bench --clients 1000 --speakers 10 --rate 2 --messages 20 --server-pid $(pidof chat-server)
  chat-bench --ceiling --clients 100 --messages 100 --batch 16";

#[derive(Parser, Debug)]
#[command(version, about = ABOUT, long_about = LONG_ABOUT, after_long_help = AFTER_LONG_HELP)]
struct Cli {
    /// The server's address; several: the servers of one room, the
    /// clients spread over them round-robin.
    #[arg(value_name = "ADDR", num_args = 1.., default_value = chat_core::wire::DEFAULT_ADDRESS)]
    addrs: Vec<SocketAddr>,

    /// Clients to connect and register (the ceiling's receivers).
    #[arg(short, long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    clients: u64,

    /// Messages each speaker sends [default: 100; 1 with --idle].
    #[arg(short, long, value_parser = clap::value_parser!(u64).range(0..=100_000_000))]
    messages: Option<u64>,

    /// Bytes of each message's text, without the `{nick}: ` prefix and
    /// terminator. chat-server cuts lines over 512 bytes.
    #[arg(short, long, default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    size: u64,

    /// Messages a second per speaker, staggered across speakers; without
    /// it, each speaker writes as fast as its socket accepts.
    #[arg(short, long, value_parser = positive)]
    rate: Option<f64>,

    /// How the clients speak: `line` (like nc), `seed` (like the
    /// tutorial's Python client) or `web` (a browser's WebSocket; ADDR is
    /// the server's web listener).
    #[arg(short, long, value_parser = parse_dialect, default_value = "line")]
    dialect: Dialect,

    /// Only the first K clients send messages [default: all; 10 with
    /// --idle].
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(0..))]
    speakers: Option<u64>,

    /// Seconds the whole run may take; then it reports what arrived and
    /// exits 1.
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    timeout: u64,

    /// Once every message is sent, end the run after this many seconds with
    /// nothing received (what has not arrived is lost).
    #[arg(long, value_name = "SECS", default_value_t = 3.0, value_parser = positive)]
    settle: f64,

    /// Connections in flight (connected, not yet registered) at once. Keep
    /// it under the server's listen backlog (128 for chat-server): a busy
    /// server drops SYNs past it, and a connection whose retries all fail
    /// times out.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,

    /// Set TCP_NODELAY on the bench's sockets (default: the system's
    /// defaults).
    #[arg(long)]
    nodelay: bool,

    /// Print one JSON line on stdout (the table goes to stderr).
    #[arg(long)]
    json: bool,

    /// No progress bar.
    #[arg(long)]
    no_progress: bool,

    /// Idle mode: hold N idle registered clients, report the server's
    /// memory per client (with --server-pid), then check that all N receive
    /// the lines of --speakers of them.
    #[arg(long, value_name = "N", num_args = 0..=1, default_missing_value = "10000",
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    idle: Option<u64>,

    /// The server's process id, for its resident memory (/proc/PID/status)
    /// and its CPU time while the messages flow (/proc/PID/stat).
    #[arg(long, value_name = "PID")]
    server_pid: Option<u32>,

    /// Seconds every client stays registered and idle before the first
    /// message (and the idle mode's second memory reading).
    #[arg(long, value_name = "SECS", default_value_t = 0.0, value_parser = non_negative)]
    hold: f64,

    /// Measure this machine's loopback ceiling instead, with no server.
    #[arg(long, conflicts_with_all = ["idle", "with_ceiling"])]
    ceiling: bool,

    /// The ceiling's batched pass: lines per write.
    #[arg(long, value_name = "K", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=65_536))]
    batch: u64,

    /// After the run, measure the ceiling too and give the server's
    /// deliveries/s as a fraction of it.
    #[arg(long, conflicts_with = "idle")]
    with_ceiling: bool,

    /// Closed loop: an unpaced speaker waits for its own echo whenever W of
    /// its messages are out. The tutorial's server relays raw chunks, so
    /// messages pipelined faster than it reads tear there; --window 1 keeps
    /// one message per chunk.
    #[arg(long, value_name = "W", conflicts_with = "rate", value_parser = clap::value_parser!(u64).range(1..))]
    window: Option<u64>,

    /// Write each client's received bytes to DIR/client-N.bin (for
    /// diagnosis).
    #[arg(long, value_name = "DIR")]
    dump: Option<std::path::PathBuf>,

    /// Also check that every client received the messages in one and the
    /// same order (every sender's lines interleaved alike for all).
    #[arg(long, conflicts_with = "ceiling")]
    same_order: bool,

    /// Allow a server address outside the loopback range.
    #[arg(long)]
    allow_non_loopback: bool,

    #[command(flatten)]
    tls: host::tls_client::TlsOptions,
}

fn positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x >= 0.0 && x.is_finite() => Ok(x),
        _ => Err(format!("{s:?} is not a number >= 0")),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("chat-bench: cannot raise the open-file limit: {e}");
    }
    if cli.ceiling {
        return ceiling_only(&cli);
    }
    if let Some(addr) = cli.addrs.iter().find(|addr| !addr.ip().is_loopback() && !cli.allow_non_loopback) {
        eprintln!("chat-bench: {addr} is not a loopback address (--allow-non-loopback to insist)");
        return ExitCode::from(2);
    }
    let idle = cli.idle.is_some();
    let clients = cli.idle.unwrap_or(cli.clients) as usize;
    let speakers = cli.speakers.map_or(if idle { 10 } else { clients }, |k| k as usize);
    if speakers > clients {
        eprintln!("chat-bench: --speakers {speakers} is more than the {clients} clients");
        return ExitCode::from(2);
    }
    let tls = if cli.tls.enabled() {
        let made = host::tls_client::config(&cli.tls).and_then(|config| {
            let names = cli.addrs.iter().map(|addr| host::tls_client::server_name(&addr.to_string()));
            Ok(bench::tls::Tls { config: Arc::new(config), names: names.collect::<Result<_, _>>()? })
        });
        match made {
            Ok(tls) => Some(tls),
            Err(e) => {
                eprintln!("chat-bench: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let plan = Plan {
        addrs: cli.addrs.clone(),
        dialect: cli.dialect,
        clients,
        speakers,
        messages: cli.messages.unwrap_or(if idle { 1 } else { 100 }) as usize,
        size: cli.size as usize,
        rate: cli.rate,
        nodelay: cli.nodelay,
        timeout: Duration::from_secs(cli.timeout),
        settle: Duration::from_secs_f64(cli.settle),
        concurrency: cli.concurrency as usize,
        progress: !cli.no_progress && std::io::stderr().is_terminal(),
        hold: Duration::from_secs_f64(cli.hold),
        window: cli.window.map(|w| w as usize),
        dump: cli.dump.clone(),
        tls,
        same_order: cli.same_order,
    };
    if plan.size < plan.min_size() {
        eprintln!(
            "chat-bench: --size {} is too small: this run's messages need at least {} bytes",
            plan.size,
            plan.min_size()
        );
        return ExitCode::from(2);
    }
    let lines = plan.speakers as u64 * plan.messages as u64;
    if plan.same_order && lines > bench::order::MAX_LINES {
        eprintln!(
            "chat-bench: --same-order keeps at most {} lines ({lines} here: fewer speakers or messages)",
            bench::order::MAX_LINES
        );
        return ExitCode::from(2);
    }
    let bits = plan.expected();
    if bits > 8_000_000_000 {
        eprintln!("chat-bench: {bits} deliveries to track is more than this bench keeps (8e9)");
        return ExitCode::from(2);
    }

    let read = |pid: u32| match Reading::of(pid) {
        Ok(reading) => Some(reading),
        Err(e) => {
            eprintln!("chat-bench: cannot read /proc/{pid}: {e}");
            None
        }
    };
    let before = cli.server_pid.and_then(read);
    // The bench's own process is read with the server's.
    let me = cli.server_pid.map(|_| std::process::id());
    let (mut at_messages, mut me_at_messages) = (None, None);
    let report = bench::run(&plan, &mut || {
        at_messages = cli.server_pid.and_then(read);
        me_at_messages = me.and_then(read);
    });
    // Read only if the messages started: the CPU window is theirs.
    let after = at_messages.and(cli.server_pid).and_then(read);
    let me_after = me_at_messages.and(me).and_then(read);

    let mut rows = report.rows();
    let mut output = RunOutput {
        mode: if idle { "idle" } else { "chat" },
        ok: report.ok(),
        report: &report,
        server_rss: None,
        server_cpu: None,
        bench_cpu: None,
        ceiling: None,
        of_ceiling: None,
    };
    let mut ok = report.ok();
    match (cli.server_pid, before, at_messages) {
        (Some(pid), Some(before), Some(after)) => {
            let memory = Memory::new(pid, before, after, clients);
            rows.push(memory.row(clients));
            output.server_rss = Some(memory);
        }
        (pid, before, _) if idle => {
            let why = match (pid, before) {
                (None, _) => "give --server-pid",
                (Some(_), None) => "cannot read it",
                (Some(_), Some(_)) => "the run stopped before every client registered",
            };
            rows.push(("server memory".to_string(), format!("not measured ({why})")));
        }
        _ => {}
    }
    if let (Some(pid), Some(before), Some(after)) = (cli.server_pid, at_messages, after) {
        let cpu = Cpu::new(pid, before, after, report.counts.deliveries);
        rows.push(cpu.row("server"));
        output.server_cpu = Some(cpu);
    }
    if let (Some(pid), Some(before), Some(after)) = (me, me_at_messages, me_after) {
        let cpu = Cpu::new(pid, before, after, report.counts.deliveries);
        rows.push(cpu.row("bench"));
        output.bench_cpu = Some(cpu);
    }
    if cli.with_ceiling && ok {
        match bench::ceiling(clients, plan.messages, plan.size, cli.batch as usize) {
            Ok(ceiling) => {
                let single = report.timing.deliveries_per_sec / ceiling.single.deliveries_per_sec;
                let batched = report.timing.deliveries_per_sec / ceiling.batched.deliveries_per_sec;
                rows.extend(ceiling.rows());
                rows.push((
                    "server / ceiling".to_string(),
                    format!(
                        "{:.1}% of 1 per write, {:.1}% of {} per write",
                        single * 100.0,
                        batched * 100.0,
                        ceiling.batch
                    ),
                ));
                output.of_ceiling = Some(OfCeiling { single: round(single, 3), batched: round(batched, 3) });
                output.ceiling = Some(ceiling);
            }
            Err(e) => {
                eprintln!("chat-bench: the ceiling failed: {e}");
                ok = false;
            }
        }
    }
    emit(&cli, &output, &bench::table(&rows));
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The JSON line of a run: the report, and what the command line added.
#[derive(Serialize)]
struct RunOutput<'r> {
    mode: &'static str,
    #[serde(flatten)]
    report: &'r Report,
    /// The report's checks all passed.
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_rss: Option<Memory>,
    #[serde(skip_serializing_if = "Option::is_none")]
    server_cpu: Option<Cpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bench_cpu: Option<Cpu>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ceiling: Option<Ceiling>,
    #[serde(skip_serializing_if = "Option::is_none")]
    of_ceiling: Option<OfCeiling>,
}

/// The server's deliveries/s as a fraction of the ceiling's.
#[derive(Serialize)]
struct OfCeiling {
    single: f64,
    batched: f64,
}

/// The JSON line of `--ceiling`.
#[derive(Serialize)]
struct CeilingOutput<'c> {
    mode: &'static str,
    #[serde(flatten)]
    ceiling: &'c Ceiling,
}

fn ceiling_only(cli: &Cli) -> ExitCode {
    let messages = cli.messages.unwrap_or(100) as usize;
    match bench::ceiling(cli.clients as usize, messages, cli.size as usize, cli.batch as usize) {
        Ok(ceiling) => {
            emit(cli, &CeilingOutput { mode: "ceiling", ceiling: &ceiling }, &bench::table(&ceiling.rows()));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chat-bench: the ceiling failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn emit(cli: &Cli, output: &impl Serialize, table: &str) {
    if cli.json {
        eprint!("{table}");
        match serde_json::to_string(output) {
            Ok(json) => println!("{json}"),
            Err(e) => eprintln!("chat-bench: cannot write the JSON line: {e}"),
        }
    } else {
        print!("{table}");
    }
}

/// The dialect the bench's clients speak: `line`, `seed` or `web`.
fn parse_dialect(name: &str) -> Result<Dialect, String> {
    match name.parse() {
        Ok(dialect @ (Dialect::Line | Dialect::Seed | Dialect::Web)) => Ok(dialect),
        Ok(other) => Err(format!("chat-bench does not speak {}", other.name())),
        Err(e) => Err(e.to_string()),
    }
}
