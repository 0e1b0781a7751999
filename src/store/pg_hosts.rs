//! Multi-host PostgreSQL URLs, as libpq reads them: `postgres://user@host1:5432,host2:5432/db?
//! target_session_attrs=read-write`. sqlx connects to one host only, so for such a URL hongxin
//! runs a small forwarder on a loopback port of its own and gives sqlx that port: each new
//! connection is handed to the first host, in the URL's order, that answers and has the wanted
//! attributes (`read-write`: not `transaction_read_only`; `primary`: not in recovery; `any`, the
//! default: reachable), and its bytes are passed through untouched (TLS included). After a
//! failover the old primary's connections break, the store reconnects, and the new connections
//! reach the promoted standby: the same process goes on writing (tests/failover.rs).
//!
//! A TLS certificate is then checked against the loopback address, not the host's name: with
//! `sslmode=verify-full` use a single host behind a proxy instead (docs/deployment.md).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

use crate::domain::StoreError;

/// How a host must be for a connection to go to it (libpq's `target_session_attrs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionAttrs {
    Any,
    ReadWrite,
    Primary,
}

/// A URL split into its hosts and the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiHost {
    /// `(host, port)` in the URL's order; a host without a port takes 5432.
    pub hosts: Vec<(String, u16)>,
    pub attrs: SessionAttrs,
    /// `scheme://userinfo@` before the hosts.
    prefix: String,
    /// `/database?query` after them, `target_session_attrs` taken out.
    suffix: String,
}

impl MultiHost {
    /// `None` for a URL with one host (sqlx reads it itself).
    pub fn parse(url: &str) -> Result<Option<MultiHost>, StoreError> {
        let bad = |why: &str| StoreError(format!("database URL: {why}"));
        let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
            return Ok(None);
        };
        let rest = &url[scheme_end..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let (userinfo, hosts) = match authority.rfind('@') {
            Some(at) => (&authority[..=at], &authority[at + 1..]),
            None => ("", authority),
        };
        if !hosts.contains(',') {
            return Ok(None);
        }
        let mut list = Vec::new();
        for h in hosts.split(',') {
            // `[v6]:port`, `[v6]`, `name:port`, `name`.
            let (host, port) = match h.strip_prefix('[').and_then(|v6| v6.split_once(']')) {
                Some((v6, rest)) => (&h[..v6.len() + 2], rest.strip_prefix(':')),
                None => match h.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (h, None),
                },
            };
            let port = match port {
                Some(p) => p
                    .parse::<u16>()
                    .map_err(|_| bad(&format!("{h:?} has no valid port")))?,
                None => 5432,
            };
            if host.is_empty() {
                return Err(bad("an empty host in the host list"));
            }
            list.push((host.to_string(), port));
        }
        let tail = &rest[authority_end..];
        let (path, query) = match tail.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (tail, None),
        };
        let mut attrs = SessionAttrs::Any;
        let mut kept = Vec::new();
        for pair in query.into_iter().flat_map(|q| q.split('&')) {
            match pair.split_once('=') {
                Some(("target_session_attrs", v)) => {
                    attrs = match v {
                        "any" => SessionAttrs::Any,
                        "read-write" => SessionAttrs::ReadWrite,
                        "primary" => SessionAttrs::Primary,
                        other => {
                            return Err(bad(&format!(
                                "target_session_attrs={other}: use any, read-write or primary"
                            )))
                        }
                    }
                }
                _ if pair.is_empty() => {}
                _ => kept.push(pair),
            }
        }
        let suffix = if kept.is_empty() {
            path.to_string()
        } else {
            format!("{path}?{}", kept.join("&"))
        };
        Ok(Some(MultiHost {
            hosts: list,
            attrs,
            prefix: format!("{}{userinfo}", &url[..scheme_end]),
            suffix,
        }))
    }

    /// The URL for one host.
    pub fn url_for(&self, host: &str, port: u16) -> String {
        format!("{}{host}:{port}{}", self.prefix, self.suffix)
    }

    /// Whether `host` answers and has the wanted attributes, within a few seconds.
    async fn suits(&self, host: &str, port: u16) -> bool {
        let Ok(options) = PgConnectOptions::from_str(&self.url_for(host, port)) else {
            return false;
        };
        let attrs = self.attrs;
        let probe = async move {
            let mut conn = options
                .application_name("hongxin (finding the primary)")
                .disable_statement_logging()
                .connect()
                .await
                .ok()?;
            let ok = match attrs {
                SessionAttrs::Any => true,
                SessionAttrs::ReadWrite => {
                    let read_only: String = sqlx::query_scalar("SHOW transaction_read_only")
                        .fetch_one(&mut conn)
                        .await
                        .ok()?;
                    read_only == "off"
                }
                SessionAttrs::Primary => {
                    !sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
                        .fetch_one(&mut conn)
                        .await
                        .ok()?
                }
            };
            let _ = conn.close().await;
            Some(ok)
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(5), probe).await,
            Ok(Some(true))
        )
    }

    /// Starts the forwarder and returns the single-host URL sqlx should use.
    pub async fn forward(self) -> Result<String, StoreError> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(|e| StoreError(format!("starting the multi-host forwarder: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| StoreError(e.to_string()))?
            .port();
        let local = self.url_for("127.0.0.1", port);
        let hosts = std::sync::Arc::new(self);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let hosts = hosts.clone();
                tokio::spawn(async move {
                    for (host, port) in &hosts.hosts {
                        if !hosts.suits(host, *port).await {
                            continue;
                        }
                        match tokio::net::TcpStream::connect((host.as_str(), *port)).await {
                            Ok(mut outbound) => {
                                let _ = outbound.set_nodelay(true);
                                let _ = inbound.set_nodelay(true);
                                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound)
                                    .await;
                                return;
                            }
                            Err(_) => continue,
                        }
                    }
                    tracing::warn!(
                        hosts = hosts.hosts.len(),
                        "no database host suits the URL's target_session_attrs now; the connection is refused"
                    );
                });
            }
        });
        Ok(local)
    }
}

/// For a one-off connection: `url` itself, or for a multi-host URL the URL of the first host
/// that suits it now.
pub async fn first_suitable(url: &str) -> Result<String, StoreError> {
    let Some(m) = MultiHost::parse(url)? else {
        return Ok(url.to_string());
    };
    for (host, port) in &m.hosts {
        if m.suits(host, *port).await {
            return Ok(m.url_for(host, *port));
        }
    }
    Err(StoreError::unavailable_database(
        "no host of the database URL suits its target_session_attrs",
    ))
}

/// The URL sqlx connects with: `url` itself, or for a multi-host URL the forwarder's.
pub async fn resolve(url: &str) -> Result<String, StoreError> {
    match MultiHost::parse(url)? {
        None => Ok(url.to_string()),
        Some(m) => m.forward().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_host_url_splits_into_its_hosts_and_keeps_the_rest() {
        let m = MultiHost::parse(
            "postgres://hx:pw@db1:5433,db2,10.0.0.3:6000/hongxin?sslmode=disable&target_session_attrs=read-write&connect_timeout=3",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            m.hosts,
            vec![
                ("db1".to_string(), 5433),
                ("db2".to_string(), 5432),
                ("10.0.0.3".to_string(), 6000)
            ]
        );
        assert_eq!(m.attrs, SessionAttrs::ReadWrite);
        assert_eq!(
            m.url_for("127.0.0.1", 7000),
            "postgres://hx:pw@127.0.0.1:7000/hongxin?sslmode=disable&connect_timeout=3"
        );
        // One host: sqlx's own business.
        assert_eq!(
            MultiHost::parse("postgres://hx@db1:5432/hongxin").unwrap(),
            None
        );
        assert!(MultiHost::parse("postgres://db1,db2/x?target_session_attrs=standby").is_err());
        assert!(MultiHost::parse("postgres://db1:x,db2/x").is_err());
        let m = MultiHost::parse("postgres://[::1]:6000,[fe80::2]/x")
            .unwrap()
            .unwrap();
        assert_eq!(
            m.hosts,
            vec![("[::1]".to_string(), 6000), ("[fe80::2]".to_string(), 5432)]
        );
        let m = MultiHost::parse("postgresql://a,b/x").unwrap().unwrap();
        assert_eq!(m.attrs, SessionAttrs::Any);
        assert_eq!(m.url_for("h", 1), "postgresql://h:1/x");
    }
}
