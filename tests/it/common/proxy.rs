//! A TCP proxy in front of a test's own broker, cut to play a broker outage: every open
//! connection drops and new ones are refused until it is restored.

use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// A TCP proxy on 127.0.0.1:`port` to `target`, which can be cut and restored.
pub struct Proxy {
    port: u16,
    target: u16,
    running: Mutex<Option<CancellationToken>>,
}

impl Proxy {
    pub async fn start(port: u16, target: u16) -> Arc<Proxy> {
        let proxy = Arc::new(Proxy {
            port,
            target,
            running: Mutex::new(None),
        });
        proxy.restore().await;
        proxy
    }

    /// Listens again and forwards new connections.
    pub async fn restore(&self) {
        let listener = TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap_or_else(|error| panic!("the proxy cannot listen on {}: {error}", self.port));
        let cut = CancellationToken::new();
        *self.running.lock().await = Some(cut.clone());
        let target = self.target;
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cut.cancelled() => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((mut client, _)) = accepted else {
                    continue;
                };
                let cut = cut.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    tokio::select! {
                        _ = cut.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
    }

    /// Drops every connection and stops listening.
    pub async fn cut(&self) {
        if let Some(cut) = self.running.lock().await.take() {
            cut.cancel();
        }
    }
}
