//! Automatic certificates (issue 14): Spindle obtains a certificate over
//! ACME with the TLS-ALPN-01 challenge from Debian's pebble, a real ACME
//! test server started here, serves the issued chain, and keeps it in its
//! cache across a restart.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{fixtures, Server, TempDir};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sh(dir: &Path, cmd: &str) {
    let st = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success(), "{cmd}");
}

/// pebble on free ports, validating TLS-ALPN-01 on `tls_port`; killed on drop.
struct Pebble {
    child: Child,
    directory: String,
    management: u16,
}

impl Pebble {
    fn start(dir: &Path, tls_port: u16) -> Pebble {
        // pebble's own HTTPS certificate, from a CA the ACME client is
        // told to trust through SSL_CERT_FILE.
        sh(dir, "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=pebble test CA'");
        sh(dir, "openssl req -newkey rsa:2048 -nodes -keyout pebble.key -out pebble.csr -subj '/CN=127.0.0.1'");
        std::fs::write(
            dir.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
        )
        .unwrap();
        sh(dir, "openssl x509 -req -in pebble.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out pebble.pem -days 2 -extfile ext.cnf");
        let (listen, management) = (free_port(), free_port());
        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble.pem"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": free_port(),
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        }});
        std::fs::write(dir.join("pebble.json"), config.to_string()).unwrap();
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(dir.join("pebble.json"))
            // No random validation delays, no random nonce rejections.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble is installed by scripts/deps.sh test");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.contains("ACME directory available") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("pebble did not start");
        Pebble {
            child,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management,
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spindle(port: u16, pebble: &Pebble, cache: &Path, ca: &Path) -> Server {
    let args: Vec<String> = [
        "serve",
        fixtures().to_str().unwrap(),
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--workers",
        "1",
        "--acme-domain",
        "localhost",
        "--acme-directory",
        &pebble.directory,
        "--acme-cache",
        cache.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    Server::start_tls_env(&args, &[("SSL_CERT_FILE", ca.to_str().unwrap())])
}

/// curl against https://localhost:PORT trusting only `root`.
fn verified_get(port: u16, root: &Path) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", "--cacert", root.to_str().unwrap()])
        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
        .arg(format!("https://localhost:{port}/hello.php"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn a_certificate_is_obtained_from_pebble_served_and_cached() {
    let dir = TempDir::new("acme");
    let port = free_port();
    let pebble = Pebble::start(dir.path(), port);
    let cache = dir.path().join("cache");
    let ca = dir.path().join("ca.pem");
    let s = spindle(port, &pebble, &cache, &ca);
    assert!(
        s.wait_for_log("ACME: certificate installed", Duration::from_secs(60)),
        "no certificate; log:\n{}",
        s.log()
    );
    // The issuing root, as pebble publishes it: the served chain must lead
    // to it (leaf and intermediate both sent).
    let root = dir.path().join("root.pem");
    let got = Command::new("curl")
        .args(["-sk", "--max-time", "10", "-o", root.to_str().unwrap()])
        .arg(format!("https://127.0.0.1:{}/roots/0", pebble.management))
        .status()
        .unwrap();
    assert!(got.success());
    assert_eq!(
        verified_get(port, &root),
        (true, "Hello, World!".to_string())
    );
    assert!(cache.join("localhost.crt").exists() && cache.join("account.json").exists());
    drop(s);

    // A restart serves the cached certificate at once, asking for none.
    let s = spindle(port, &pebble, &cache, &ca);
    assert_eq!(
        verified_get(port, &root),
        (true, "Hello, World!".to_string())
    );
    assert!(!s.log().contains("requesting a certificate"), "{}", s.log());
}

#[test]
fn acme_options_are_checked_at_startup() {
    let docroot = fixtures();
    let d = docroot.to_str().unwrap();
    let (ok, err) = support::run_to_exit(&["serve", d, "--acme-domain", "not a name"]);
    assert!(!ok);
    assert!(
        err.contains("--acme-domain") && err.contains("not a DNS name"),
        "{err}"
    );
    let (ok, err) = support::run_to_exit(&["serve", d, "--acme-directory", "https://x/dir"]);
    assert!(!ok);
    assert!(err.contains("needs --acme-domain"), "{err}");
    let (ok, err) = support::run_to_exit(&[
        "serve",
        d,
        "--acme-domain",
        "example.com",
        "--acme-directory",
        "http://insecure/dir",
    ]);
    assert!(!ok);
    assert!(err.contains("https://"), "{err}");
}
