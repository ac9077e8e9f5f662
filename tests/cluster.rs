//! One room across several `chat-server`s over NATS JetStream: each test
//! starts its own `nats-server -js` on a free loopback port with a
//! temporary store (tests/support/nats.rs), and its own servers.

use std::thread;
use std::time::Duration;

use tests::nats::{failing_chat_server, free_port, Nats};
use tests::{chat_client, seed_client, ChatServer, Raw};

/// The notices of a paused room, as PROTOCOL.md gives them.
const PAUSED: &str =
    "*** the room is paused: this server lost touch with the others; your lines wait and go out when it is back\n";
const RESUMED: &str = "*** the room is back\n";

#[test]
#[ignore = "needs nats-server"]
fn nc_the_tutorial_s_client_and_chat_client_on_three_servers_are_one_room() {
    let nats = Nats::start();
    let servers: Vec<ChatServer> = (0..3).map(|_| nats.chat_server(&[])).collect();

    let mut alice = Raw::join(&servers[0].addr, "alice");
    let mut neural = seed_client("127.0.0.1", servers[1].port(), "Neural");
    neural.stdout.wait_for("Connected to server!\n");
    alice.expect("Neural joined!\n");
    let mut carol = chat_client(&servers[2].addr, &["--nick", "carol"]);
    carol.stdout.wait_for("Connected to server!\n");
    alice.expect("carol joined!\n");
    neural.stdout.wait_for("carol joined!\n");

    neural.type_in("Hello\n");
    alice.expect("Neural: Hello\n");
    carol.stdout.wait_for("Neural: Hello\n");
    alice.send(b"/me waves\n");
    alice.expect("* alice waves\n");
    carol.stdout.wait_for("* alice waves\n");
    neural.stdout.wait_for("* alice waves\n");
    carol.type_in("/nick caroline\n");
    alice.expect("*** carol is now known as caroline\n");
    neural.stdout.wait_for("*** carol is now known as caroline\n");
    carol.type_in("hi all\n");
    alice.expect("caroline: hi all\n");
    neural.stdout.wait_for("caroline: hi all\n");

    carol.type_in("/quit\n");
    assert!(carol.wait().success(), "chat-client ends after /quit: {}", carol.stderr.text());
    alice.expect("caroline left!\n");
    neural.stdout.wait_for("caroline left!\n");
    assert_eq!(
        neural.stdout.text(),
        "Choose your nickname: Neural joined!\nConnected to server!\ncarol joined!\nNeural: Hello\n\
         * alice waves\n*** carol is now known as caroline\ncaroline: hi all\ncaroline left!\n",
        "the tutorial's client, on its own server, sees the room's one story"
    );
}

#[test]
#[ignore = "needs nats-server"]
fn six_clients_on_three_servers_see_600_concurrent_lines_in_one_order() {
    let nats = Nats::start();
    let servers: Vec<ChatServer> = (0..3).map(|_| nats.chat_server(&["--no-throttle"])).collect();
    let nicks: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    let mut clients: Vec<Raw> = Vec::new();
    for (i, nick) in nicks.iter().enumerate() {
        let client = Raw::join(&servers[i % 3].addr, nick);
        // Everyone before it sees it join.
        for earlier in &mut clients {
            earlier.expect(&format!("{nick} joined!\n"));
        }
        clients.push(client);
    }
    // Everyone speaks at once.
    let readers: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, mut client)| {
            thread::spawn(move || {
                let lines: String = (0..100).map(|n| format!("line {n} from c{i}\n")).collect();
                client.send(lines.as_bytes());
                (0..600).map(|_| client.line()).collect::<Vec<String>>()
            })
        })
        .collect();
    let seen: Vec<Vec<String>> = readers.into_iter().map(|r| r.join().expect("a reader")).collect();
    for (i, lines) in seen.iter().enumerate() {
        assert_eq!(lines, &seen[0], "c{i} and c0 saw different orders");
    }
    for i in 0..6 {
        let from: Vec<&String> = seen[0].iter().filter(|l| l.starts_with(&format!("c{i}: "))).collect();
        let sent: Vec<String> = (0..100).map(|n| format!("c{i}: line {n} from c{i}\n")).collect();
        assert_eq!(from, sent.iter().collect::<Vec<_>>(), "c{i}'s lines, once each, in its order");
    }
}

#[test]
#[ignore = "needs nats-server"]
fn a_nickname_raced_on_two_servers_has_exactly_one_winner() {
    let nats = Nats::start();
    let one = nats.chat_server(&[]);
    let two = nats.chat_server(&[]);
    for round in 0..5 {
        let nick = format!("Racer{round}");
        let mut a = Raw::connect(&one.addr);
        let mut b = Raw::connect(&two.addr);
        a.expect("NICK");
        b.expect("NICK");
        a.send(format!("{nick}\n").as_bytes());
        b.send(format!("{}\n", nick.to_lowercase()).as_bytes());
        let (la, lb) = (a.line(), b.line());
        let won = |line: &str, nick: &str| line == format!("{nick} joined!\n");
        let lost = |line: &str, nick: &str| line == format!("*** nickname \"{nick}\" refused: it is taken\n");
        let lower = nick.to_lowercase();
        match (won(&la, &nick), won(&lb, &lower)) {
            (true, false) => assert!(lost(&lb, &lower), "round {round}: the loser is told: {lb:?}"),
            (false, true) => assert!(lost(&la, &nick), "round {round}: the loser is told: {la:?}"),
            _ => panic!("round {round}: exactly one wins: {la:?} / {lb:?}"),
        }
    }
}

#[test]
#[ignore = "needs nats-server"]
fn msg_and_who_reach_across_servers() {
    let nats = Nats::start();
    let one = nats.chat_server(&[]);
    let two = nats.chat_server(&[]);
    let mut alice = Raw::join(&one.addr, "alice");
    let mut bob = Raw::join(&two.addr, "bob");
    alice.expect("bob joined!\n");
    bob.send(b"/who\n");
    bob.expect("*** 2 in the room: bob alice\n");
    bob.send(b"/msg ALICE just for you\n");
    bob.expect("-> *alice* just for you\n");
    alice.expect("*bob* just for you\n");
    alice.send(b"/msg nobody hello\n");
    alice.expect("*** no such nickname: nobody\n");
    // A third server that comes later knows who is there.
    let three = nats.chat_server(&[]);
    let mut carol = Raw::join(&three.addr, "carol");
    carol.send(b"/who\n");
    let who = carol.line();
    assert!(who == "*** 3 in the room: carol alice bob\n" || who == "*** 3 in the room: carol bob alice\n", "{who:?}");
    carol.send(b"/msg bob hi from three\n");
    bob.expect("carol joined!\n*carol* hi from three\n");
}

#[test]
#[ignore = "needs nats-server"]
fn a_killed_server_s_clients_leave_once_within_ten_seconds() {
    let nats = Nats::start();
    let one = nats.chat_server(&[]);
    let two = nats.chat_server(&[]);
    let three = nats.chat_server(&[]);
    let mut alice = Raw::join(&one.addr, "alice");
    let _bob = Raw::join(&two.addr, "bob");
    let _dave = Raw::join(&two.addr, "dave");
    let mut carol = Raw::join(&three.addr, "carol");
    alice.expect("bob joined!\ndave joined!\ncarol joined!\n");

    // The documented bound, 10 s, is the wait's: a later `left!` fails the read.
    alice.stream().set_read_timeout(Some(Duration::from_secs(10))).expect("a read timeout");
    two.proc.signal(9);
    let gone = [alice.line(), alice.line()];
    let mut sorted = gone.clone();
    sorted.sort();
    assert_eq!(sorted, ["bob left!\n", "dave left!\n"]);
    assert_eq!([carol.line(), carol.line()], gone, "one order on every server");

    // Once: the next line anyone sees is the next thing said.
    thread::sleep(Duration::from_secs(3));
    alice.send(b"still here\n");
    alice.expect("alice: still here\n");
    carol.expect("alice: still here\n");
    // And its nicknames are free again.
    let mut bob = Raw::join(&three.addr, "bob");
    alice.expect("bob joined!\n");
    bob.send(b"back\n");
    alice.expect("bob: back\n");
}

#[test]
#[ignore = "needs nats-server"]
fn the_broker_away_pauses_the_room_and_loses_nothing() {
    let mut nats = Nats::start();
    let one = nats.chat_server(&[]);
    let two = nats.chat_server(&[]);
    let mut alice = Raw::join(&one.addr, "alice");
    let mut bob = Raw::join(&two.addr, "bob");
    alice.expect("bob joined!\n");

    nats.kill();
    alice.expect(PAUSED);
    bob.expect(PAUSED);
    alice.send(b"one\ntwo\n");
    bob.send(b"three\n");
    thread::sleep(Duration::from_secs(2));
    nats.restart();
    alice.expect(RESUMED);
    bob.expect(RESUMED);
    let mut heard = Vec::new();
    for _ in 0..3 {
        heard.push(alice.line());
    }
    let mut bob_heard = Vec::new();
    for _ in 0..3 {
        bob_heard.push(bob.line());
    }
    assert_eq!(heard, bob_heard, "one order");
    let alice_s: Vec<&String> = heard.iter().filter(|l| l.starts_with("alice: ")).collect();
    assert_eq!(alice_s, ["alice: one\n", "alice: two\n"]);
    assert!(heard.contains(&"bob: three\n".to_string()), "{heard:?}");
    // Nothing twice: the next line is the next thing said.
    bob.send(b"after\n");
    alice.expect("bob: after\n");
    bob.expect("bob: after\n");
}

#[test]
#[ignore = "needs nats-server"]
fn a_bad_url_no_jetstream_or_no_broker_is_a_clear_error() {
    let (status, stderr) = failing_chat_server(&["--nats", "http://[::1"]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("http://[::1"), "names the URL: {stderr}");

    let port = free_port();
    let url = format!("nats://127.0.0.1:{port}");
    let (status, stderr) = failing_chat_server(&["--nats", &url]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&url), "names the URL: {stderr}");

    // Something that takes the connection and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("nats://{}", silent.local_addr().expect("address"));
    // It gives up within Proc::wait's bound.
    let (status, stderr) = failing_chat_server(&["--nats", &url]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&url) && stderr.contains("did not answer"), "names the URL and why: {stderr}");
    drop(silent);

    // A broker without JetStream.
    let plain = Nats::start_without_jetstream();
    let (status, stderr) = failing_chat_server(&["--nats", &plain.url()]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("JetStream"), "says what is missing: {stderr}");
}

#[test]
#[ignore = "needs nats-server"]
fn history_on_join_is_the_whole_room_s_even_on_a_server_that_came_later() {
    let nats = Nats::start();
    let one = nats.chat_server(&["--history", "3"]);
    let mut alice = Raw::join(&one.addr, "alice");
    alice.send(b"one\ntwo\n");
    alice.expect("alice: one\nalice: two\n");
    // A server started now learns the room's last lines from the stream.
    let two = nats.chat_server(&["--history", "3"]);
    let mut bob = Raw::connect(&two.addr);
    bob.expect("NICK");
    bob.send(b"bob\n");
    bob.expect(
        "bob joined!\nConnected to server!\n\
         *** history: the last 3 lines of the room\nalice joined!\nalice: one\nalice: two\n*** end of history\n",
    );
    alice.expect("bob joined!\n");
}

#[test]
#[ignore = "needs nats-server"]
fn a_server_that_stops_says_its_clients_left_and_frees_their_names() {
    let nats = Nats::start();
    let one = nats.chat_server(&[]);
    let mut two = nats.chat_server(&[]);
    let mut alice = Raw::join(&one.addr, "alice");
    let mut bob = Raw::join(&two.addr, "bob");
    alice.expect("bob joined!\n");
    two.proc.signal(15);
    bob.expect("*** the server is shutting down\n");
    alice.expect("bob left!\n");
    assert!(two.proc.wait().success(), "a stopped member exits 0: {}", two.proc.stderr.text());
    let mut again = Raw::join(&one.addr, "bob");
    alice.expect("bob joined!\n");
    again.send(b"back\n");
    alice.expect("bob: back\n");
}
