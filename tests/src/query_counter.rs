//! A PostgreSQL wire-protocol proxy that records every statement its clients run, so a test
//! can tell whether (and how often) a gateway asked the database: each simple query ('Q')
//! and each execution of a prepared statement ('E', traced back through its portal's Bind
//! and the statement's Parse to the SQL text). Everything is forwarded unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

const POSTGRES: &str = "127.0.0.1:5432";
/// Codes of the untyped requests a client may send before its startup message.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

pub struct QueryCounter {
    pub port: u16,
    executed: Arc<Mutex<Vec<String>>>,
}

impl QueryCounter {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let executed = Arc::new(Mutex::new(Vec::new()));
        let record = executed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let record = record.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(POSTGRES).await else {
                        return;
                    };
                    let (client_read, mut client_write) = client.into_split();
                    let (mut server_read, server_write) = server.into_split();
                    tokio::select! {
                        _ = tokio::io::copy(&mut server_read, &mut client_write) => {}
                        _ = forward_counting(client_read, server_write, record) => {}
                    }
                });
            }
        });
        Self { port, executed }
    }

    /// The SQL of every statement run so far, in order.
    pub fn statements(&self) -> Vec<String> {
        self.executed.lock().expect("lock").clone()
    }

    /// Statements run whose SQL contains `needle`.
    pub fn count_matching(&self, needle: &str) -> usize {
        self.statements()
            .iter()
            .filter(|sql| sql.contains(needle))
            .count()
    }
}

/// Client to server: the untyped requests up to the startup message, then typed messages.
async fn forward_counting(
    client: OwnedReadHalf,
    mut server: OwnedWriteHalf,
    executed: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut client = BufReader::new(client);
    loop {
        let len = client.read_u32().await?;
        let mut rest = vec![0; (len as usize).saturating_sub(4)];
        client.read_exact(&mut rest).await?;
        server.write_all(&len.to_be_bytes()).await?;
        server.write_all(&rest).await?;
        let code = rest
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        if !matches!(code, Some(SSL_REQUEST | GSSENC_REQUEST)) {
            break;
        }
    }
    let mut statements: HashMap<String, String> = HashMap::new();
    let mut portals: HashMap<String, String> = HashMap::new();
    loop {
        let kind = client.read_u8().await?;
        let len = client.read_u32().await?;
        let mut body = vec![0; (len as usize).saturating_sub(4)];
        client.read_exact(&mut body).await?;
        let mut fields = body.split(|&b| b == 0).map(String::from_utf8_lossy);
        let mut field = || fields.next().map(|f| f.into_owned()).unwrap_or_default();
        match kind {
            b'Q' => executed.lock().expect("lock").push(field()),
            b'P' => {
                let name = field();
                statements.insert(name, field());
            }
            b'B' => {
                let portal = field();
                portals.insert(portal, field());
            }
            b'E' => {
                let statement = portals.get(&field()).cloned().unwrap_or_default();
                let sql = statements.get(&statement).cloned().unwrap_or_default();
                executed.lock().expect("lock").push(sql);
            }
            _ => {}
        }
        server.write_u8(kind).await?;
        server.write_all(&len.to_be_bytes()).await?;
        server.write_all(&body).await?;
    }
}
