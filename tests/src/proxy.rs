//! A TCP proxy in front of a real server (RabbitMQ, PostgreSQL): cutting it is the network
//! or the server going away for whoever connects through it, while the shared server keeps
//! running for every other test.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    holding: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    stall: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let up = Arc::new(AtomicBool::new(true));
        let holding = Arc::new(AtomicBool::new(false));
        let (cut, cuts) = watch::channel(0u64);
        let (stall, stalls) = watch::channel(0u64);
        let (accepting, hold_new) = (up.clone(), holding.clone());
        tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                // While holding, new connections are accepted and then left unanswered
                // until a cut: a server that hangs before its first byte.
                if hold_new.load(Ordering::SeqCst) {
                    let mut cuts = cuts.clone();
                    cuts.borrow_and_update();
                    tokio::spawn(async move {
                        let _ = cuts.changed().await;
                        drop(inbound);
                    });
                    continue;
                }
                // While cut, connections are accepted and dropped at once: the client sees
                // its connection reset, as when a server is gone.
                if !accepting.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let (mut cuts, mut stalls) = (cuts.clone(), stalls.clone());
                // Earlier cuts are history for this connection; only a cut from now on ends it.
                cuts.borrow_and_update();
                stalls.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                        // Both ends stay open, and nothing more passes, until a cut.
                        _ = stalls.changed() => { let _ = cuts.changed().await; }
                    }
                });
            }
        });
        Self {
            port,
            up,
            holding,
            cut,
            stall,
        }
    }

    /// Drops every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Open connections stay open but carry nothing more, either way: a server that hangs,
    /// or a network that loses packets without resetting anything. New ones are refused.
    pub fn stall(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.stall.send_modify(|n| *n += 1);
    }

    /// New connections are accepted but never answered; open ones go on as they were.
    pub fn hold_new(&self) {
        self.holding.store(true, Ordering::SeqCst);
    }

    pub fn restore(&self) {
        self.holding.store(false, Ordering::SeqCst);
        self.up.store(true, Ordering::SeqCst);
    }
}
