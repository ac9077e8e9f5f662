//! History on join through `chat-server`, with its default and its flag:
//! a line client is replayed the room's last lines between two notices,
//! the tutorial's client is replayed nothing.

use tests::{seed_client, ChatServer, Raw};

#[test]
fn a_newcomer_sees_the_last_lines_and_private_ones_stay_private() {
    let server = ChatServer::start(&["--history", "3"]);
    let mut alice = Raw::join(&server.addr, "alice");
    let mut bob = Raw::join(&server.addr, "bob");
    bob.expect("*** history: the last line of the room\nalice joined!\n*** end of history\n");
    alice.expect("bob joined!\n");
    alice.send(b"one\n/msg bob for bob only\ntwo\nthree\n");
    alice.expect("alice: one\n-> *bob* for bob only\nalice: two\nalice: three\n");
    bob.expect("alice: one\n*alice* for bob only\nalice: two\nalice: three\n");

    let mut carol = Raw::join(&server.addr, "carol");
    carol.expect(
        "*** history: the last 3 lines of the room\nalice: one\nalice: two\nalice: three\n*** end of history\n",
    );
    carol.send(b"hi\n");
    carol.expect("carol: hi\n");
    alice.expect("carol joined!\ncarol: hi\n");
}

#[test]
fn the_default_replays_twenty_lines_and_the_tutorial_s_client_none() {
    let server = ChatServer::start(&["--history", "20", "--no-throttle"]);
    let mut alice = Raw::join(&server.addr, "alice");
    let said: String = (1..=25).map(|i| format!("line {i}\n")).collect();
    alice.send(said.as_bytes());
    let heard: String = (1..=25).map(|i| format!("alice: line {i}\n")).collect();
    alice.expect(&heard);

    let mut bob = Raw::join(&server.addr, "bob");
    let last: String = (6..=25).map(|i| format!("alice: line {i}\n")).collect();
    bob.expect(&format!("*** history: the last 20 lines of the room\n{last}*** end of history\n"));

    let neural = seed_client("127.0.0.1", server.port(), "Neural");
    neural.stdout.wait_for("Connected to server!\n");
    alice.expect("bob joined!\nNeural joined!\n");
    alice.send(b"after\n");
    neural.stdout.wait_for("alice: after\n");
    assert_eq!(
        neural.stdout.text(),
        "Choose your nickname: Neural joined!\nConnected to server!\nalice: after\n",
        "the tutorial's transcript has no history in it"
    );
}
