//! `chat-bench` end to end, briefly: clean runs against `chat-server` in
//! both dialects and against the tutorial's Python server, clients spread
//! over several addresses, a lossy server whose losses it must report and a
//! server that gives clients different orders, which `--same-order` must.

use std::io;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

use tests::{bin, listening_addr, root, web_addr, ChatServer, Proc};

/// Runs `chat-bench ARGS --json` to the end (it bounds itself with
/// `--timeout`); returns its exit code and its JSON line.
fn bench(args: &[&str]) -> (Option<i32>, String, Output) {
    let output = Command::new(bin("bench", "chat-bench"))
        .args(args)
        .args(["--json", "--no-progress", "--timeout", "30"])
        .output()
        .expect("run chat-bench");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let json = stdout.lines().last().unwrap_or_default().to_string();
    (output.status.code(), json, output)
}

/// The value of a top-level integer field of the bench's JSON line.
fn field(json: &str, name: &str) -> u64 {
    let key = format!("\"{name}\":");
    let at = json.find(&key).unwrap_or_else(|| panic!("no {name} in {json}")) + key.len();
    let digits: String = json[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("{name} is not a number in {json}"))
}

/// Asserts a run passed every check and delivered `expected` messages.
fn assert_clean(code: Option<i32>, json: &str, output: &Output, expected: u64) {
    let table = String::from_utf8_lossy(&output.stderr);
    assert_eq!(code, Some(0), "chat-bench failed:\n{table}\n{json}");
    assert!(json.contains("\"ok\":true"), "{json}");
    for counter in ["lost", "duplicated", "reordered", "misattributed", "torn", "closed"] {
        assert_eq!(field(json, counter), 0, "{counter}:\n{table}");
    }
    assert_eq!(field(json, "expected"), expected, "{json}");
    assert_eq!(field(json, "deliveries"), expected, "{json}");
}

/// A Python server from `tests/seed/` on an ephemeral loopback port, and its
/// address.
fn python_server(script: &str) -> (Proc, String) {
    let server =
        Proc::spawn(Command::new("python3").arg(root().join("tests/seed").join(script)).args(["127.0.0.1", "0"]));
    let addr = listening_addr(&server);
    (server, addr)
}

/// A second address for one server: a TCP forwarder on an ephemeral
/// loopback port that relays every connection to `target`, both ways, and
/// counts the connections it accepted (so a test knows who came through
/// it). Its threads end with the test process.
struct Forwarder {
    addr: String,
    accepted: Arc<AtomicUsize>,
}

impl Forwarder {
    fn to(target: &str) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a forwarder");
        let addr = listener.local_addr().expect("the forwarder's address").to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (counter, target) = (accepted.clone(), target.to_string());
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = TcpStream::connect(&target) else { continue };
                for (from, to) in [(&client, &server), (&server, &client)] {
                    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else { continue };
                    let _ = to.set_nodelay(true);
                    thread::spawn(move || {
                        let _ = io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Forwarder { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

#[test]
fn line_clients_on_chat_server_receive_everything() {
    let server = ChatServer::start(&["--no-throttle"]);
    let (code, json, output) = bench(&[&server.addr, "--clients", "6", "--messages", "30", "--size", "48"]);
    assert_clean(code, &json, &output, 6 * 6 * 30);
    assert!(field(&json, "deliveries_per_sec") > 0, "{json}");
    assert!(json.contains("\"latency_us\":{\"count\":900,"), "6 x 5 x 30 latencies, echoes excluded: {json}");
}

/// 100 clients unpaced: the server has runs of lines larger than rustls
/// takes in one write for each (this once stalled them until the next line).
#[test]
fn line_clients_over_tls_receive_everything() {
    let server = ChatServer::start_tls(&["--no-throttle", "--tls-self-signed"]);
    let addr = server.tls_addr();
    let (code, json, output) = bench(&[addr, "--pin", server.fingerprint(), "-c", "100", "-m", "100", "--settle", "2"]);
    assert_clean(code, &json, &output, 100 * 100 * 100);
    // Only TLS clients were there.
    assert_eq!(server.proc.stderr.text().matches("(TLS)").count(), 100, "{}", server.proc.stderr.text());
}

#[test]
fn seed_clients_on_chat_server_receive_everything() {
    let server = ChatServer::start(&["--no-throttle"]);
    let (code, json, output) = bench(&[&server.addr, "--dialect", "seed", "--clients", "4", "--messages", "20"]);
    assert_clean(code, &json, &output, 4 * 4 * 20);
}

#[test]
fn web_clients_on_chat_server_receive_everything() {
    let server = ChatServer::start(&["--no-throttle", "--web", "127.0.0.1:0"]);
    let web = web_addr(&server.proc);
    let (code, json, output) =
        bench(&[&web, "--dialect", "web", "--clients", "5", "--messages", "30", "--size", "200"]);
    assert_clean(code, &json, &output, 5 * 5 * 30);
    assert!(json.contains("\"dialect\":\"web\""), "{json}");
    assert!(json.contains("\"latency_us\":{\"count\":600,"), "5 x 4 x 30 latencies: {json}");
    // The same server's chat port still serves line clients.
    let (code, json, output) = bench(&[&server.addr, "--clients", "3", "--messages", "10"]);
    assert_clean(code, &json, &output, 3 * 3 * 10);
}

#[test]
fn a_refused_upgrade_stops_a_web_run() {
    let server = ChatServer::start(&["--no-throttle", "--capacity", "2", "--web", "127.0.0.1:0"]);
    let web = web_addr(&server.proc);
    let (code, json, _) = bench(&[&web, "--dialect", "web", "--clients", "3", "--messages", "1"]);
    assert_eq!(code, Some(1), "{json}");
    assert!(json.contains("WebSocket upgrade refused") && json.contains("503 Service Unavailable"), "{json}");
}

#[test]
fn paced_run_with_fewer_speakers() {
    let server = ChatServer::start(&["--no-throttle"]);
    let (code, json, output) =
        bench(&[&server.addr, "--clients", "5", "--speakers", "2", "--messages", "5", "--rate", "50"]);
    assert_clean(code, &json, &output, 5 * 2 * 5);
}

#[test]
fn idle_mode_reads_the_servers_memory() {
    let server = ChatServer::start(&["--no-throttle"]);
    let pid = server.proc.child.id().to_string();
    let (code, json, output) = bench(&[&server.addr, "--idle", "40", "--speakers", "3", "--server-pid", &pid]);
    assert_clean(code, &json, &output, 40 * 3);
    assert!(json.contains("\"mode\":\"idle\"") && json.contains("\"per_client_bytes\":"), "{json}");
}

#[test]
fn a_scale_run_reads_the_servers_cpu_time() {
    // Few speakers, paced, among more clients: the scale table's shape.
    let server = ChatServer::start(&["--no-throttle"]);
    let pid = server.proc.child.id().to_string();
    let (code, json, output) = bench(&[
        &server.addr,
        "--clients",
        "30",
        "--speakers",
        "3",
        "--rate",
        "20",
        "--messages",
        "10",
        "--server-pid",
        &pid,
    ]);
    assert_clean(code, &json, &output, 30 * 3 * 10);
    assert!(json.contains(&format!("\"server_cpu\":{{\"pid\":{pid},")), "{json}");
    assert_eq!(field(&json, "deliveries"), 900);
    assert!(json.contains("\"ms_per_1000_deliveries\":"), "{json}");
    assert!(json.contains("\"bench_cpu\":{\"pid\":"), "the bench's own CPU time: {json}");
}

#[test]
fn seed_clients_on_the_tutorial_server_receive_everything() {
    let (_server, addr) = python_server("server.py");
    // The tutorial's server relays raw recv(1024) chunks from one thread per
    // client: messages pipelined faster than it reads tear at chunk ends, so
    // each client keeps one message out at a time.
    let (code, json, output) =
        bench(&[&addr, "--dialect", "seed", "--clients", "4", "--messages", "15", "--window", "1"]);
    assert_clean(code, &json, &output, 4 * 4 * 15);
}

#[test]
fn a_lossy_server_is_caught() {
    let (_server, addr) = python_server("lossy_server.py");
    let (code, json, output) = bench(&[&addr, "--clients", "3", "--messages", "10", "--settle", "1"]);
    let table = String::from_utf8_lossy(&output.stderr);
    assert_eq!(code, Some(1), "a lossy run exits 1:\n{table}");
    assert!(json.contains("\"ok\":false"), "{json}");
    // 31 chat lines (client 0's sync line, then 3 x 10 messages): the 7th,
    // 14th, 21st and 28th were dropped, each for all 3 clients.
    assert_eq!(field(&json, "lost"), 4 * 3, "{table}");
    assert_eq!(field(&json, "deliveries"), 3 * 3 * 10 - 4 * 3, "{table}");
    for counter in ["duplicated", "misattributed", "torn"] {
        assert_eq!(field(&json, counter), 0, "{counter}:\n{table}");
    }
    assert!(table.contains("FAILED"), "{table}");
}

/// One server gives one order by construction: `--same-order` passes, and
/// says how many lines every client saw in it.
#[test]
fn one_chat_server_gives_every_client_the_same_order() {
    let server = ChatServer::start(&["--no-throttle"]);
    let (code, json, output) = bench(&[&server.addr, "--clients", "6", "--messages", "30", "--same-order"]);
    assert_clean(code, &json, &output, 6 * 6 * 30);
    assert!(json.contains("\"same_order\":{\"lines\":180,\"differing\":0,"), "6 x 30 lines in one order: {json}");
    let table = String::from_utf8_lossy(&output.stderr);
    assert!(table.contains("every client saw its 180 lines in one order"), "{table}");
}

/// Two addresses of one server (its own, and a forwarder's to it): the
/// clients go round-robin over them, every delivery checked, in one order.
/// The same address twice is two addresses too.
#[test]
fn clients_spread_over_several_addresses() {
    let server = ChatServer::start(&["--no-throttle"]);
    let forwarder = Forwarder::to(&server.addr);
    let (code, json, output) =
        bench(&[&server.addr, &forwarder.addr, "--clients", "5", "--messages", "20", "--same-order"]);
    assert_clean(code, &json, &output, 5 * 5 * 20);
    assert!(json.contains(&format!("\"addrs\":[\"{}\",\"{}\"]", server.addr, forwarder.addr)), "{json}");
    assert!(json.contains("\"clients_per_addr\":[3,2]"), "{json}");
    assert!(json.contains(&format!("\"addr\":\"{}\"", server.addr)), "the first, as before: {json}");
    assert_eq!(forwarder.accepted(), 2, "clients 1 and 3 came through the second address");
    assert!(json.contains("\"differing\":0,"), "{json}");
    let table = String::from_utf8_lossy(&output.stderr);
    let second = format!("{} (2 clients)", forwarder.addr);
    assert!(table.contains("2 addresses: ") && table.contains(&second), "{table}");

    let (code, json, output) = bench(&[&server.addr, &server.addr, "--clients", "4", "--messages", "10"]);
    assert_clean(code, &json, &output, 4 * 4 * 10);
    assert!(json.contains("\"clients_per_addr\":[2,2]"), "{json}");
}

/// A server that swaps lines of different senders for every second client:
/// nothing lost and every sender's order kept, so only `--same-order`
/// catches it, naming the clients and where their orders part.
#[test]
fn same_order_catches_clients_given_different_orders() {
    let (_server, addr) = python_server("swapping_server.py");
    let args = [addr.as_str(), "--clients", "4", "--messages", "20", "--settle", "1"];
    let (code, json, output) = bench(&args);
    assert_clean(code, &json, &output, 4 * 4 * 20);

    let (code, json, output) = bench(&[&args[..], &["--same-order"]].concat());
    let table = String::from_utf8_lossy(&output.stderr);
    assert_eq!(code, Some(1), "a run with two orders exits 1:\n{table}");
    assert!(json.contains("\"ok\":false"), "{json}");
    for counter in ["lost", "duplicated", "reordered", "misattributed", "torn", "closed"] {
        assert_eq!(field(&json, counter), 0, "{counter}:\n{table}");
    }
    assert_eq!(field(&json, "deliveries"), 4 * 4 * 20, "{table}");
    assert!(field(&json, "differing") >= 1, "{table}");
    assert!(json.contains("same-order violation at line "), "{json}");
    assert!(json.contains("(each received both, in opposite orders)"), "{json}");
    assert!(table.contains("VIOLATED") && table.contains("FAILED"), "{table}");
}

#[test]
fn an_absent_server_is_an_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
    let (code, json, _) = bench(&[&format!("127.0.0.1:{port}"), "--clients", "2"]);
    assert_eq!(code, Some(1));
    assert!(json.contains("refused"), "{json}");
}

#[test]
fn ceiling_measures_both_ways_of_writing() {
    let (code, json, output) = bench(&["--ceiling", "--clients", "4", "--messages", "10", "--batch", "4"]);
    assert_eq!(code, Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(field(&json, "deliveries"), 4 * 4 * 10);
    assert!(json.contains("\"single\":{") && json.contains("\"batched\":{"), "{json}");
}

#[test]
fn help_names_the_servers_flood_control() {
    let output = Command::new(bin("bench", "chat-bench")).arg("--help").output().expect("run chat-bench --help");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success());
    for needle in ["--no-throttle", "--idle", "--ceiling", "--dialect", "--same-order", "[ADDR]...", "Exit status"] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
