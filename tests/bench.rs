//! `chat-bench` end to end, briefly: clean runs against `chat-server` in
//! both dialects and against the tutorial's Python server, and a lossy
//! server whose losses it must report.

use std::process::{Command, Output};

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
    for needle in ["--no-throttle", "--idle", "--ceiling", "--dialect", "Exit status"] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
