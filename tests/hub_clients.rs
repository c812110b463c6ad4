//! Clients nobody here wrote, against the hub (issue 11): Symfony's
//! Mercure component from Debian's php-symfony-mercure publishes with a JWT.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Command;
use std::time::Duration;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use support::Server;

const PUB_KEY: &str = "publisher-secret-0123456789abcdef";

fn symfony_publish(s: &Server, jwt: &str, topic: &str, data: &str) -> (bool, String, String) {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/clients/symfony_publish.php"
    );
    let out = Command::new("php")
        .args([script, &s.url("/.well-known/mercure"), jwt, topic, data])
        .output()
        .expect("php (php8.2-cli) runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn symfony_mercure_component_publishes_to_the_hub() {
    let s = Server::start(&["--hub", "--hub-anonymous", "--hub-publisher-key", PUB_KEY]);
    let resp = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(s.url("/.well-known/mercure?topic=https://example.com/books/%7Bid%7D"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut lines = BufReader::new(resp).lines();

    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"mercure": {"publish": ["https://example.com/books/{id}"]}}),
        &EncodingKey::from_secret(PUB_KEY.as_bytes()),
    )
    .unwrap();
    let (ok, id, err) = symfony_publish(
        &s,
        &token,
        "https://example.com/books/7",
        "{\"title\":\"Dune\"}",
    );
    assert!(ok, "{err}");
    assert!(id.starts_with("urn:uuid:"), "{id}");
    let mut got = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line.is_empty() {
            break;
        }
        got.push(line);
    }
    assert_eq!(
        got,
        [
            format!("id: {id}"),
            "event: symfony".to_string(),
            "data: {\"title\":\"Dune\"}".to_string()
        ]
    );

    // A topic the token does not cover: the client reports the hub's 403.
    let (ok, _, err) = symfony_publish(&s, &token, "https://example.com/authors/1", "x");
    assert!(!ok);
    assert!(err.contains("403"), "{err}");
    // A token signed with another key: 401.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"mercure": {"publish": ["*"]}}),
        &EncodingKey::from_secret(b"not-the-publisher-key-0123456789"),
    )
    .unwrap();
    let (ok, _, err) = symfony_publish(&s, &forged, "https://example.com/books/8", "x");
    assert!(!ok);
    assert!(err.contains("401"), "{err}");
}
