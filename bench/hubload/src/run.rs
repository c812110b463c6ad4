//! `hubload run`: N subscribers, single updates to all, then a sustained phase.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper::{header, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};

use crate::Kind;

/// Updates the delivery table can count (warm-up + rounds + sustained).
const MAX_EVENTS: usize = 1 << 20;

#[derive(clap::Args)]
pub struct Args {
    /// Server flavour: how to publish.
    #[arg(long, value_enum)]
    kind: Kind,
    /// Subscriber URL (GET, `Accept: text/event-stream`). Repeat it for
    /// several nodes: subscriber i goes to URL i mod (number of URLs), and
    /// latencies are also reported per URL (`p50_ms_0`, `p99_worst_ms_1`, ...).
    #[arg(long, required = true)]
    sub_url: Vec<String>,
    /// Publisher URL (POST).
    #[arg(long)]
    pub_url: String,
    /// Topic, for Mercure's `topic` form field.
    #[arg(long, default_value = "bench")]
    topic: String,
    /// HS256 secret for the Mercure publisher JWT.
    #[arg(long, default_value = "")]
    jwt_key: String,
    /// Subscribers.
    #[arg(short, long, default_value_t = 1000)]
    n: usize,
    /// Single updates to all (after one warm-up update), each timed alone.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Seconds of sustained publishing.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Sustained phase: update k is published once update k-window reached
    /// every subscriber (keeps every server inside its per-subscriber queue).
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Comma-separated pids whose VmRSS is summed (the server's memory).
    #[arg(long, default_value = "")]
    rss_pids: String,
    /// Connections being set up at once.
    #[arg(long, default_value_t = 256)]
    connect_concurrency: usize,
    /// Seconds to wait for any one phase before failing.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
}

/// What subscribers and the publisher share.
struct Shared {
    n: usize,
    epoch: Instant,
    /// Per subscriber: latency (ns) of the last update it received.
    lat: Vec<AtomicU64>,
    /// Per subscriber: updates received (in order; a gap is an error).
    got: Vec<AtomicU64>,
    /// Per update: subscribers that received it.
    delivered: Vec<AtomicU32>,
    /// Woken when an update reached every subscriber.
    all_got: Notify,
    /// ns since epoch of the latest delivery.
    last_delivery: AtomicU64,
    errors: AtomicU64,
    subscribed: AtomicUsize,
    sub_change: Notify,
}

impl Shared {
    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn error(&self, what: std::fmt::Arguments) {
        if self.errors.fetch_add(1, Relaxed) < 10 {
            eprintln!("hubload: {what}");
        }
    }
}

pub async fn run(args: Args) -> anyhow::Result<bool> {
    let sub_uris: Vec<Uri> = args
        .sub_url
        .iter()
        .map(|u| u.parse())
        .collect::<Result<_, _>>()
        .context("--sub-url")?;
    let nodes = sub_uris.len();
    let pub_uri: Uri = args.pub_url.parse().context("--pub-url")?;
    let pids: Vec<u32> = args
        .rss_pids
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .context("--rss-pids")?;
    let n = args.n;
    let timeout = Duration::from_secs_f64(args.timeout);
    let sh = Arc::new(Shared {
        n,
        epoch: Instant::now(),
        lat: (0..n).map(|_| AtomicU64::new(0)).collect(),
        got: (0..n).map(|_| AtomicU64::new(0)).collect(),
        delivered: (0..MAX_EVENTS).map(|_| AtomicU32::new(0)).collect(),
        all_got: Notify::new(),
        last_delivery: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        subscribed: AtomicUsize::new(0),
        sub_change: Notify::new(),
    });

    let rss0 = rss_kib(&pids);
    let mut publisher = Publisher::connect(&args, pub_uri).await?;

    // Subscribe everyone, a bounded number of handshakes at a time.
    let t0 = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency));
    for i in 0..n {
        let (sh, uri, gate) = (sh.clone(), sub_uris[i % nodes].clone(), gate.clone());
        tokio::spawn(async move {
            if let Err(e) = subscriber(i, &sh, uri, gate).await {
                sh.error(format_args!("subscriber {i}: {e:#}"));
                sh.sub_change.notify_waiters();
            }
        });
    }
    let deadline = Instant::now() + timeout;
    loop {
        let woken = sh.sub_change.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let (subs, errs) = (sh.subscribed.load(Relaxed), sh.errors.load(Relaxed));
        if subs == n {
            break;
        }
        if errs > 0 || Instant::now() > deadline {
            bail!("{subs} of {n} subscribed, {errs} failed");
        }
        let _ = tokio::time::timeout(Duration::from_millis(200), woken).await;
    }
    let subscribe_s = t0.elapsed().as_secs_f64();
    eprintln!("hubload: {n} subscribed in {subscribe_s:.2} s");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_sub = rss_kib(&pids);

    // Warm-up, then single updates to all, each timed on its own.
    let mut seq = 0u64;
    publisher.publish(&sh, seq).await?;
    wait_all(&sh, seq, timeout).await?;
    seq += 1;
    // Per round: (p50, p99, last) over everyone, then over each node's own.
    let mut all = Rounds::default();
    let mut per_node: Vec<Rounds> = (0..nodes).map(|_| Rounds::default()).collect();
    for _ in 0..args.rounds {
        publisher.publish(&sh, seq).await?;
        wait_all(&sh, seq, timeout).await?;
        let lat: Vec<u64> = sh.lat.iter().map(|a| a.load(Relaxed)).collect();
        all.push(lat.clone());
        if nodes > 1 {
            for (k, r) in per_node.iter_mut().enumerate() {
                r.push(lat.iter().skip(k).step_by(nodes).copied().collect());
            }
        }
        seq += 1;
        // Lets the server and client settle between rounds.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..args.rounds {
        eprintln!(
            "hubload: round {}: p50 {:.1} ms, p99 {:.1} ms, last {:.1} ms",
            i + 1,
            all.p50[i],
            all.p99[i],
            all.last[i]
        );
    }
    let rss_evt = rss_kib(&pids);

    // Sustained: a window of updates in flight for `duration` seconds.
    let first = seq;
    let start = sh.now_ns();
    let end = Instant::now() + Duration::from_secs_f64(args.duration);
    let mut pub_ns = 0u64;
    while Instant::now() < end && (seq as usize) < MAX_EVENTS {
        if seq >= first + args.window as u64 {
            wait_all(&sh, seq - args.window as u64, timeout).await?;
        }
        let t = Instant::now();
        publisher.publish(&sh, seq).await?;
        pub_ns += t.elapsed().as_nanos() as u64;
        seq += 1;
    }
    for s in seq.saturating_sub(args.window as u64).max(first)..seq {
        wait_all(&sh, s, timeout).await?;
    }
    let sustained = seq - first;
    let span_s = (sh.last_delivery.load(Relaxed) - start) as f64 / 1e9;
    let dps = (sustained as f64 * n as f64) / span_s;
    let rss_end = rss_kib(&pids);
    eprintln!(
        "hubload: sustained: {sustained} updates x {n} = {} deliveries in {span_s:.2} s: {dps:.0}/s; publish answered in {:.2} ms on average",
        sustained * n as u64,
        pub_ns as f64 / 1e6 / sustained.max(1) as f64
    );

    // Every subscriber must have every update, in order, and still be open.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let missing = sh.got.iter().filter(|g| g.load(Relaxed) != seq).count();
    let errors = sh.errors.load(Relaxed);
    let per_sub = |kib: u64| (kib.saturating_sub(rss0)) as f64 / n as f64;
    println!(
        "kind={:?} n={n} subscribe_s={subscribe_s:.2} rss0_kib={rss0} rss_sub_kib={rss_sub} rss_kib={rss_evt} rss_end_kib={rss_end} \
         kib_per_sub_idle={:.2} kib_per_sub={:.2} kib_per_sub_end={:.2} \
         p50_ms={:.1} p99_ms={:.1} p99_worst_ms={:.1} last_ms={:.1} last_worst_ms={:.1} \
         dps={dps:.0} updates={seq} missing={missing} errors={errors} nodes={nodes}{}",
        args.kind,
        per_sub(rss_sub),
        per_sub(rss_evt),
        per_sub(rss_end),
        median(&all.p50),
        median(&all.p99),
        worst(&all.p99),
        median(&all.last),
        worst(&all.last),
        per_node
            .iter()
            .enumerate()
            .filter(|_| nodes > 1)
            .map(|(k, r)| format!(
                " p50_ms_{k}={:.1} p99_worst_ms_{k}={:.1} last_worst_ms_{k}={:.1}",
                median(&r.p50),
                worst(&r.p99),
                worst(&r.last)
            ))
            .collect::<String>(),
    );
    if missing > 0 || errors > 0 {
        eprintln!("hubload: FAILED: {missing} subscribers missed updates, {errors} errors");
        return Ok(false);
    }
    Ok(true)
}

/// Latencies (ms) of single updates to all, one entry per round.
#[derive(Default)]
struct Rounds {
    p50: Vec<f64>,
    p99: Vec<f64>,
    last: Vec<f64>,
}

impl Rounds {
    /// Adds one round from its per-subscriber latencies (ns).
    fn push(&mut self, mut l: Vec<u64>) {
        let n = l.len();
        l.sort_unstable();
        let ms = |ns: u64| ns as f64 / 1e6;
        self.p50.push(ms(l[(n - 1) / 2]));
        self.p99
            .push(ms(l[((n as f64 * 0.99).ceil() as usize).clamp(1, n) - 1]));
        self.last.push(ms(l[n - 1]));
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn worst(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// Waits until update `seq` reached every subscriber.
async fn wait_all(sh: &Shared, seq: u64, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let woken = sh.all_got.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let got = sh.delivered[seq as usize].load(Relaxed) as usize;
        if got >= sh.n {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!(
                "update {seq}: {got} of {} subscribers got it within {timeout:?}",
                sh.n
            );
        }
        let _ = tokio::time::timeout(left.min(Duration::from_millis(500)), woken).await;
    }
}

async fn open(uri: &Uri) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let host = uri.host().context("no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    let (tx, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    Ok(tx)
}

fn authority(uri: &Uri) -> String {
    uri.authority().map_or_else(String::new, |a| a.to_string())
}

async fn subscriber(i: usize, sh: &Shared, uri: Uri, gate: Arc<Semaphore>) -> anyhow::Result<()> {
    let permit = gate.acquire().await?;
    let host = uri.host().context("no host")?;
    let tcp = TcpStream::connect((host, uri.port_u16().unwrap_or(80))).await?;
    tcp.set_nodelay(true)?;
    let (mut tx, conn) = http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(conn);
    let req = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, authority(&uri))
        .header(header::ACCEPT, "text/event-stream")
        .body(Empty::<Bytes>::new())?;
    let resp: Response<Incoming> = tx.send_request(req).await?;
    if resp.status() != 200 {
        bail!("status {}", resp.status());
    }
    drop(permit);
    sh.subscribed.fetch_add(1, Relaxed);
    sh.sub_change.notify_waiters();

    let mut body = resp.into_body();
    let mut buf: Vec<u8> = Vec::with_capacity(256);
    let mut expect = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        let mut start = 0;
        while let Some(nl) = buf[start..].iter().position(|&b| b == b'\n') {
            let line = &buf[start..start + nl];
            start += nl + 1;
            let Some(v) = line.strip_prefix(b"data:") else {
                continue;
            };
            let v = std::str::from_utf8(v)?.trim();
            let (s, t) = v.split_once(':').context("data is not seq:ns")?;
            let (s, t): (u64, u64) = (s.parse()?, t.parse()?);
            if s != expect {
                sh.error(format_args!(
                    "subscriber {i}: got update {s}, expected {expect}"
                ));
            }
            expect = s + 1;
            let now = sh.now_ns();
            sh.lat[i].store(now.saturating_sub(t), Relaxed);
            sh.got[i].fetch_add(1, Relaxed);
            sh.last_delivery.fetch_max(now, Relaxed);
            if sh.delivered[s as usize].fetch_add(1, Relaxed) as usize + 1 == sh.n {
                sh.all_got.notify_waiters();
            }
        }
        buf.drain(..start);
    }
    bail!("stream ended after {expect} updates")
}

/// One keep-alive connection that POSTs updates in the server's dialect.
struct Publisher {
    tx: http1::SendRequest<Full<Bytes>>,
    uri: Uri,
    kind: Kind,
    topic: String,
    bearer: String,
}

impl Publisher {
    async fn connect(args: &Args, uri: Uri) -> anyhow::Result<Self> {
        let bearer = if args.kind == Kind::Mercure {
            let exp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs()
                + 86400;
            let claims = serde_json::json!({"mercure": {"publish": ["*"]}, "exp": exp});
            let key = jsonwebtoken::EncodingKey::from_secret(args.jwt_key.as_bytes());
            let jwt = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key)?;
            format!("Bearer {jwt}")
        } else {
            String::new()
        };
        Ok(Publisher {
            tx: open(&uri).await?,
            uri,
            kind: args.kind,
            topic: args.topic.clone(),
            bearer,
        })
    }

    async fn publish(&mut self, sh: &Shared, seq: u64) -> anyhow::Result<()> {
        let data = format!("{seq}:{}", sh.now_ns());
        let mut req = Request::post(self.uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(header::HOST, authority(&self.uri));
        let body = match self.kind {
            Kind::Mercure => {
                req = req
                    .header(header::AUTHORIZATION, &self.bearer)
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
                form_urlencoded::Serializer::new(String::new())
                    .append_pair("topic", &self.topic)
                    .append_pair("data", &data)
                    .finish()
            }
            Kind::Nchan | Kind::Floor => {
                req = req.header(header::CONTENT_TYPE, "text/plain");
                data
            }
        };
        self.tx.ready().await?;
        let resp = self
            .tx
            .send_request(req.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = resp.status();
        let text = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!(
                "publish {seq}: status {status}: {}",
                String::from_utf8_lossy(&text).trim()
            );
        }
        Ok(())
    }
}

/// Sum of VmRSS (KiB) of `pids`; 0 when none.
fn rss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}
