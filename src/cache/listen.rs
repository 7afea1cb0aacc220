//! The data-version listener: one connection per gateway that LISTENs for
//! the register's change announcements (migration 000008) and reads the
//! versions again at each one, and at every heartbeat. Until it has read
//! them, and whenever its connection fails, the versions are unknown and the
//! cache is bypassed: a change it might have missed cannot be served over.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures::StreamExt;

use super::DataVersions;
use crate::db::versions;
use crate::metrics::CacheMetrics;

pub struct Listener {
    pub database_url: String,
    pub role: Option<String>,
    pub heartbeat: Duration,
    pub versions: Arc<DataVersions>,
    pub metrics: CacheMetrics,
}

impl Listener {
    /// Runs for the life of the process, reconnecting after a failure.
    pub fn spawn(self) {
        tokio::spawn(async move {
            let mut logged = false;
            loop {
                let err = self.run().await;
                self.versions.forget();
                self.metrics.listening(false);
                if !logged {
                    tracing::warn!(error = %err, "data-version listener lost; caching paused until it reconnects");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        });
    }

    async fn connect(&self) -> anyhow::Result<AsyncPgConnection> {
        let mut conn = tokio::time::timeout(
            Duration::from_secs(5),
            AsyncPgConnection::establish(&self.database_url),
        )
        .await??;
        if let Some(role) = &self.role {
            // Quoted; the name was checked to be a plain identifier (config).
            diesel::sql_query(format!("SET ROLE \"{role}\"")).execute(&mut conn).await?;
        }
        diesel::sql_query("SET application_name = 'kasvu-gateway-listener'")
            .execute(&mut conn)
            .await?;
        Ok(conn)
    }

    /// Listens until the connection fails; returns why.
    async fn run(&self) -> anyhow::Error {
        let mut conn = match self.connect().await {
            Ok(c) => c,
            Err(e) => return e,
        };
        // LISTEN before the first read: a change committed after the read is
        // then announced, one committed before it is in the read.
        if let Err(e) = versions::listen(&mut conn).await {
            return e.into();
        }
        loop {
            match tokio::time::timeout(self.heartbeat * 2, versions::read(&mut conn)).await {
                Ok(Ok(v)) => {
                    self.versions.advance(v);
                    self.metrics.listening(true);
                }
                Ok(Err(e)) => return e.into(),
                Err(_) => return anyhow::anyhow!("reading the data versions timed out"),
            }
            // Wait for an announcement or the heartbeat; coalesce a burst.
            let mut announced = 0u64;
            {
                let mut stream = std::pin::pin!(conn.notifications_stream());
                let first = tokio::time::timeout(self.heartbeat, stream.next()).await;
                match first {
                    Err(_) => {}
                    Ok(Some(Ok(_))) => {
                        announced += 1;
                        while let Some(Some(next)) = futures::FutureExt::now_or_never(stream.next())
                        {
                            if let Err(e) = next {
                                return e.into();
                            }
                            announced += 1;
                        }
                    }
                    Ok(Some(Err(e))) => return e.into(),
                    Ok(None) => return anyhow::anyhow!("the listener's connection closed"),
                }
            }
            self.metrics.invalidations(announced);
        }
    }
}
