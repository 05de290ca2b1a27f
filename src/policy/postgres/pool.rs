//! A small pool of `tokio_postgres` connections. A connection that broke
//! (Postgres restarted, network cut) or whose user gave up on it (a timeout
//! dropped it mid-query) is never reused: the next checkout connects anew,
//! so the store recovers by itself once Postgres is back.
//!
//! Each connection keeps the statements the store prepared on it
//! ([`Conn::prepared`]): a decision's queries are parsed and planned once
//! per connection, then only bound and executed (one round trip each, not
//! two). A connection dropped after an error takes its statements with it.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::{Client, Config, NoTls, Statement};

/// Statements prepared on one connection, by their SQL.
type Prepared = HashMap<&'static str, Statement>;

/// An idle connection and its prepared statements.
struct Idle {
    client: Client,
    prepared: Prepared,
}

/// At most this many connections per process.
pub const MAX_CONNECTIONS: usize = 8;

pub struct Pool {
    config: Config,
    idle: Arc<Mutex<Vec<Idle>>>,
    permits: Arc<Semaphore>,
    /// The runtime the pool was made on (the control runtime, when
    /// serving): connections open and run there, not on whichever worker
    /// happened to need one, so they outlive any worker and never wait
    /// for a busy one to poll them.
    home: Option<tokio::runtime::Handle>,
}

/// A checked-out connection. Call [`Conn::release`] after a successful use
/// to return it; dropped otherwise, it is closed.
pub struct Conn {
    client: Option<Client>,
    prepared: Prepared,
    idle: Arc<Mutex<Vec<Idle>>>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub fn new(config: Config, size: usize) -> Self {
        let home = tokio::runtime::Handle::try_current().ok();
        Pool { config, idle: Arc::default(), permits: Arc::new(Semaphore::new(size.max(1))), home }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A live connection: an idle one, or a new one.
    pub async fn get(&self) -> Result<Conn, tokio_postgres::Error> {
        let permit = self.permits.clone().acquire_owned().await.expect("pool semaphore is never closed");
        let reused = {
            let mut idle = self.idle.lock();
            let mut found = None;
            while let Some(c) = idle.pop() {
                if !c.client.is_closed() {
                    found = Some(c);
                    break;
                }
            }
            found
        };
        let (client, prepared) = match (reused, &self.home) {
            (Some(c), _) => (c.client, c.prepared),
            (None, Some(home)) => {
                let config = self.config.clone();
                let client = match home.spawn(async move { connect(&config).await }).await {
                    Ok(connected) => connected?,
                    // Only at shutdown: the home runtime is gone.
                    Err(_) => connect(&self.config).await?,
                };
                (client, Prepared::new())
            }
            (None, None) => (connect(&self.config).await?, Prepared::new()),
        };
        Ok(Conn { client: Some(client), prepared, idle: self.idle.clone(), _permit: permit })
    }
}

/// Opens one connection and drives it on the runtime.
pub async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "postgres connection closed");
        }
    });
    Ok(client)
}

impl Conn {
    /// Returns the connection to the pool (if it is still healthy).
    pub fn release(mut self) {
        if let Some(c) = self.client.take()
            && !c.is_closed()
        {
            self.idle.lock().push(Idle { client: c, prepared: std::mem::take(&mut self.prepared) });
        }
    }

    /// `sql` prepared on this connection: the first call prepares it, later
    /// ones (also after the connection went back to the pool) reuse it.
    pub async fn prepared(&mut self, sql: &'static str) -> Result<Statement, tokio_postgres::Error> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let statement = self.client.as_ref().expect("present until released").prepare(sql).await?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }
}

impl Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until released")
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until released")
    }
}
