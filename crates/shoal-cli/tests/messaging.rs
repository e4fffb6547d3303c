//! Messaging through the real `shoal` binary: two daemons on 127.0.0.1 talk in a topic (one-shot and
//! interactive `chat`), start and join a private topic, exchange a letter through a contact's name, export both, and refuse bad input.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on what they do not expect

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use common::*;
/// Messaging through the real binary and two daemons: a post in a topic reaches the other daemon, a
/// letter to a contact arrives sealed, both export as JSON, and bad input exits non-zero with words.
#[test]
fn two_daemons_chat_in_a_topic_and_exchange_a_letter_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let (a_home, b_home) = (dir.path().join("a"), dir.path().join("b"));
    let (_a, a_addr) = daemon(&a_home);
    let (_b, _) = daemon_with(&b_home, &["--bootstrap", &a_addr]);
    let b_peer = json(&run_ok(&b_home, &["status", "--json"]))["peer"].as_str().unwrap().to_string();

    run_ok(&a_home, &["topics", "join", "harbour"]);
    run_ok(&b_home, &["topics", "join", "harbour"]);
    let sent = json(&run_ok(&a_home, &["chat", "harbour", "--send", "boats at noon", "--json"]));
    assert_eq!((sent["text"].as_str(), sent["mine"].as_bool()), (Some("boats at noon"), Some(true)));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let got = loop {
        let all: serde_json::Value = serde_json::from_str(&run_ok(&b_home, &["export", "harbour"])).unwrap();
        if all.as_array().is_some_and(|a| !a.is_empty()) {
            break all;
        }
        assert!(std::time::Instant::now() < deadline, "b never got a's post");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(got[0]["text"], "boats at noon");
    assert_eq!(got[0]["mine"], false);
    let topics = json(&run_ok(&b_home, &["topics", "--json"]));
    assert_eq!(topics[0]["name"], "harbour");

    // Interactive: b's `shoal chat` prints the history, sends what is typed, prints what arrives.
    let mut chat = shoal(&b_home);
    chat.args(["chat", "harbour"]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null());
    // Killed by its own pid if the test fails before it ends.
    let mut child = Proc { child: chat.spawn().unwrap(), stderr_lines: None };
    let mut stdin = child.child.stdin.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let next = || rx.recv_timeout(Duration::from_secs(20)).expect("a line from shoal chat");
    assert!(next().ends_with(": boats at noon"), "history first");
    use std::io::Write;
    writeln!(stdin, "typed at b").unwrap();
    assert!(next().contains("me: typed at b"));
    run_ok(&a_home, &["chat", "harbour", "--send", "live from a"]);
    let live = next();
    assert!(live.contains(": live from a") && !live.contains("me:"), "{live}");
    drop(stdin);
    let status = child.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "end of input ends the chat cleanly");

    // A private topic followed under a name is what `chat NAME` uses, not the public topic of that name.
    // `--private` starts one and prints the command members join with; b joins under a name of its own.
    let made = run_ok(&a_home, &["topics", "join", "crew", "--private"]);
    let invite = made.lines().map(str::trim).find(|l| l.starts_with("shoal topics join crew --key ")).expect(&made);
    let key = invite.rsplit(' ').next().unwrap();
    assert_eq!(key.len(), 64, "{made}");
    run_ok(&b_home, &["topics", "join", "our crew", "--key", key]);
    let p = json(&run_ok(&a_home, &["chat", "crew", "--send", "private words", "--json"]));
    assert_eq!(p["conversation"], "crew");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let all: serde_json::Value = serde_json::from_str(&run_ok(&b_home, &["export", "our crew"])).unwrap();
        if all.as_array().is_some_and(|a| a.iter().any(|m| m["text"] == "private words")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "b never read a's private post");
        std::thread::sleep(Duration::from_millis(200));
    }
    let followed = json(&run_ok(&a_home, &["topics", "--json"]));
    let names: Vec<(&str, bool)> = followed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["name"].as_str().unwrap(), t["private"].as_bool().unwrap()))
        .collect();
    assert_eq!(names, [("crew", true), ("harbour", false)]);

    run_ok(&a_home, &["contact", "add", "Bée", &b_peer]);
    let contacts = json(&run_ok(&a_home, &["contact", "ls", "--json"]));
    assert_eq!(contacts[0]["name"], "Bée");
    run_ok(&a_home, &["msg", "Bée", "only you can read this"]);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let inbox = json(&run_ok(&b_home, &["inbox", "--json"]));
        if inbox.as_array().is_some_and(|a| a.iter().any(|m| m["text"] == "only you can read this")) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "b never got the letter");
        std::thread::sleep(Duration::from_millis(200));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let out = run_ok(&a_home, &["inbox"]);
        if out.contains("(delivered)") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "a never saw its letter delivered: {out}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let with: serde_json::Value = serde_json::from_str(&run_ok(&a_home, &["export", "Bée"])).unwrap();
    assert_eq!(with[0]["status"], "delivered");

    for (args, says) in [
        (vec!["msg", "nobody", "hi"], "neither a peer id nor a contact"),
        (vec!["chat", "harbour", "--send", "   "], "empty"),
        (vec!["topics", "join", "bad\u{7}name"], "control"),
        (vec!["contact", "add", "x", "not-a-peer"], "peer id"),
        (vec!["topics", "leave", "never-joined"], "not following"),
        (vec!["topics", "join", "x", "--private", "--key", "00"], "cannot be used with"),
        (vec!["topics", "join", "x", "--key", "00"], "64 hex digits"),
    ] {
        let o = shoal(&a_home).args(&args).stdin(Stdio::null()).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && err.contains(says), "shoal {args:?}: {err}");
    }
}
