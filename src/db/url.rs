//! `MANGO_DATABASE_URL`: `sqlite://PATH` or `mssql://USER:PASS@HOST:PORT/DB?encrypt=…`.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use percent_encoding::percent_decode_str;

use crate::domain::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MssqlEncrypt {
    /// `encrypt=true`: TLS for the whole session.
    On,
    /// `encrypt=false`: TLS for the login only.
    LoginOnly,
    /// `encrypt=danger_plaintext`: no TLS at all.
    DangerPlaintext,
}

#[derive(Clone)]
pub struct MssqlUrl {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub user: String,
    pub password: Secret,
    pub encrypt: MssqlEncrypt,
    pub trust_cert: bool,
    pub pool_size: u32,
    pub connect_timeout: Duration,
}

impl fmt::Debug for MssqlUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mssql://{}:[redacted]@{}:{}/{}",
            self.user, self.host, self.port, self.database
        )
    }
}

#[derive(Debug, Clone)]
pub enum DatabaseUrl {
    Sqlite {
        path: PathBuf,
        busy_timeout: Duration,
        pool_size: usize,
    },
    Mssql(MssqlUrl),
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k.to_ascii_lowercase(), v.to_string())
        })
        .collect()
}

fn parse_number<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{key}` must be a positive number, not {value:?}"))
}

impl DatabaseUrl {
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(rest) = raw.strip_prefix("sqlite://") {
            let (path, query) = match rest.split_once('?') {
                Some((p, q)) => (p, Some(q)),
                None => (rest, None),
            };
            if path.is_empty() {
                return Err(
                    "sqlite:// needs a file path, e.g. sqlite://./data/mango-store.db".into(),
                );
            }
            let mut busy_timeout = Duration::from_secs(5);
            let mut pool_size = 8;
            for (key, value) in query_pairs(query) {
                match key.as_str() {
                    "busy_timeout_ms" => {
                        busy_timeout = Duration::from_millis(parse_number(&key, &value)?)
                    }
                    "pool_size" => pool_size = parse_number::<usize>(&key, &value)?.max(1),
                    other => return Err(format!("unknown sqlite option `{other}`")),
                }
            }
            return Ok(Self::Sqlite {
                path: PathBuf::from(path),
                busy_timeout,
                pool_size,
            });
        }
        if raw.starts_with("mssql://") {
            return Self::parse_mssql(raw).map(Self::Mssql);
        }
        Err("must start with sqlite:// or mssql://".into())
    }

    fn parse_mssql(raw: &str) -> Result<MssqlUrl, String> {
        let url = url::Url::parse(raw).map_err(|e| format!("not a valid mssql:// URL: {e}"))?;
        let decode = |s: &str| percent_decode_str(s).decode_utf8_lossy().into_owned();
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("mssql:// needs a host")?
            .to_string();
        let database = decode(url.path().trim_start_matches('/'));
        if database.is_empty() {
            return Err("mssql:// needs a database name as its path".into());
        }
        if url.username().is_empty() {
            return Err("mssql:// needs a user".into());
        }
        let mut out = MssqlUrl {
            host,
            port: url.port().unwrap_or(1433),
            database,
            user: decode(url.username()),
            password: Secret::new(decode(url.password().unwrap_or(""))),
            encrypt: MssqlEncrypt::On,
            trust_cert: false,
            pool_size: 10,
            connect_timeout: Duration::from_secs(10),
        };
        for (key, value) in query_pairs(url.query()) {
            match key.as_str() {
                "encrypt" => {
                    out.encrypt = match value.to_ascii_lowercase().as_str() {
                        "true" => MssqlEncrypt::On,
                        "false" => MssqlEncrypt::LoginOnly,
                        "danger_plaintext" => MssqlEncrypt::DangerPlaintext,
                        _ => return Err("`encrypt` must be true, false or danger_plaintext".into()),
                    }
                }
                "trust_cert" => {
                    out.trust_cert = match value.to_ascii_lowercase().as_str() {
                        "true" => true,
                        "false" => false,
                        _ => return Err("`trust_cert` must be true or false".into()),
                    }
                }
                "pool_size" => out.pool_size = parse_number::<u32>(&key, &value)?.max(1),
                "connect_timeout_ms" => {
                    out.connect_timeout = Duration::from_millis(parse_number(&key, &value)?)
                }
                other => return Err(format!("unknown mssql option `{other}`")),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths() {
        let DatabaseUrl::Sqlite { path, .. } =
            DatabaseUrl::parse("sqlite://./data/mango-store.db").unwrap()
        else {
            panic!()
        };
        assert_eq!(path, PathBuf::from("./data/mango-store.db"));
        let DatabaseUrl::Sqlite {
            path, busy_timeout, ..
        } = DatabaseUrl::parse("sqlite:///tmp/x.db?busy_timeout_ms=50").unwrap()
        else {
            panic!()
        };
        assert_eq!(path, PathBuf::from("/tmp/x.db"));
        assert_eq!(busy_timeout, Duration::from_millis(50));
    }

    #[test]
    fn mssql_decodes_credentials_and_options() {
        let DatabaseUrl::Mssql(m) = DatabaseUrl::parse(
            "mssql://sa:p%40ss%3Aw@db.local:14330/store?encrypt=danger_plaintext&trust_cert=true",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(m.user, "sa");
        assert_eq!(m.password.expose(), "p@ss:w");
        assert_eq!(m.host, "db.local");
        assert_eq!(m.port, 14330);
        assert_eq!(m.database, "store");
        assert_eq!(m.encrypt, MssqlEncrypt::DangerPlaintext);
        assert!(m.trust_cert);
        assert!(!format!("{m:?}").contains("p@ss"));
    }

    #[test]
    fn other_schemes_are_refused() {
        assert!(DatabaseUrl::parse("postgres://x/y").is_err());
        assert!(DatabaseUrl::parse("mssql://host/db?encrypt=maybe").is_err());
    }
}
