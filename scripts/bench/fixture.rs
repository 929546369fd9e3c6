//! Loopback peers for scripts/bench/probe.sh, on one thread (tokio's current-thread runtime):
//!
//! * `--http N` listeners that answer every request at once with `200 {"status":"ok"}` and
//!   close;
//! * `--hole N` listeners that accept, read what comes and never answer (a connection is
//!   closed only once the client closes it);
//! * `--tcp N` listeners that accept and close.
//!
//! Prints `{"http": [ports], "hole": [ports], "tcp": [ports]}` on one line, serves until its
//! standard input closes, then prints on stderr how many connections each kind took.

use std::io::{Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 15\r\nConnection: close\r\n\r\n{\"status\":\"ok\"}";

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Http,
    Hole,
    Tcp,
}

fn listener() -> std::io::Result<TcpListener> {
    let s = TcpSocket::new_v4()?;
    s.set_reuseaddr(true)?;
    s.bind("127.0.0.1:0".parse().map_err(std::io::Error::other)?)?;
    s.listen(65_535)
}

async fn answer(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                seen.extend_from_slice(&buf[..n]);
                if seen.windows(4).any(|w| w == b"\r\n\r\n") || seen.len() > 64 * 1024 {
                    break;
                }
            }
        }
    }
    let _ = s.write_all(ANSWER).await;
    let _ = s.shutdown().await;
}

/// Read and drop whatever comes until the client gives up; never say a word.
async fn silent(mut s: TcpStream) {
    let mut buf = [0u8; 4096];
    while let Ok(n) = s.read(&mut buf).await {
        if n == 0 {
            return;
        }
    }
}

async fn serve(l: TcpListener, kind: Kind, count: Arc<AtomicU64>) {
    loop {
        let s = match l.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                let _ = writeln!(std::io::stderr(), "fixture: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        count.fetch_add(1, Ordering::Relaxed);
        match kind {
            Kind::Http => {
                let _ = s.set_nodelay(true);
                tokio::spawn(answer(s));
            }
            Kind::Hole => {
                tokio::spawn(silent(s));
            }
            Kind::Tcp => drop(s),
        }
    }
}

fn count_arg(args: &[String], name: &str, default: usize) -> usize {
    args.windows(2).find(|w| w[0] == name).and_then(|w| w[1].parse().ok()).unwrap_or(default)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async {
        let kinds = [("http", Kind::Http), ("hole", Kind::Hole), ("tcp", Kind::Tcp)];
        let mut ports = Vec::new();
        let mut counts = Vec::new();
        for (name, kind) in kinds {
            let mut list = Vec::new();
            let count = Arc::new(AtomicU64::new(0));
            for _ in 0..count_arg(&args, &format!("--{name}"), 4) {
                let l = listener()?;
                list.push(l.local_addr()?.port().to_string());
                tokio::spawn(serve(l, kind, count.clone()));
            }
            ports.push(format!("\"{name}\": [{}]", list.join(", ")));
            counts.push((name, count));
        }
        let mut out = std::io::stdout();
        writeln!(out, "{{{}}}", ports.join(", "))?;
        out.flush()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            let _ = tx.send(());
        });
        let _ = rx.await;
        let said: Vec<String> = counts.iter().map(|(n, c)| format!("{n} {}", c.load(Ordering::Relaxed))).collect();
        let _ = writeln!(std::io::stderr(), "fixture: connections: {}", said.join(", "));
        Ok(())
    })
}
