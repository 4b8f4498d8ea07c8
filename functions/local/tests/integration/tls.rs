//! Redis over TLS with AUTH (standalone and cluster), credentials from Secrets Manager
//! (LocalStack), and Postgres certificates verified: against `redis-server --tls-port` with a
//! throwaway CA made here, and the local Postgres' self-signed certificate.

use crate::helpers::*;
use flashflow_adapters::aws;
use flashflow_adapters::postgres::{DatabaseSettings, Db};
use flashflow_adapters::redis::{RedisSettings, RedisStore};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// A CA and a server certificate it signed for `localhost` / `127.0.0.1`, in a temp dir.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ff-pki-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ssl = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .expect("openssl is on the PATH");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        std::fs::write(
            dir.join("san.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        for ca in ["ca", "other-ca"] {
            ssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-subj",
                &format!("/CN=FlashFlow test {ca}"),
            ]);
        }
        ssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ]);
        ssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        Self { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).to_string_lossy().into_owned()
    }

    /// `redis-server` arguments for TLS on `port` (clients need no certificate of their own).
    fn redis_args(&self, port: u16) -> Vec<String> {
        [
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &self.path("server.pem"),
            "--tls-key-file",
            &self.path("server.key"),
            "--tls-ca-cert-file",
            &self.path("ca.pem"),
            "--tls-auth-clients",
            "no",
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let until = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < until, "port {port} did not open");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A Redis with a plaintext port and a TLS port, both requiring `password`.
fn tls_redis(pki: &Pki, password: &str) -> (PrivateRedis, u16) {
    let tls_port = free_port();
    let mut args = pki.redis_args(tls_port);
    args.extend(["--requirepass".to_owned(), password.to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let redis = PrivateRedis::start(&args);
    wait_for_port(tls_port);
    (redis, tls_port)
}

/// A secret in LocalStack's Secrets Manager, under a fresh name.
async fn put_secret(value: &str) -> String {
    let sdk = aws::sdk_config().await;
    let name = format!("flashflow-test/{}", Uuid::new_v4().simple());
    aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(&name)
        .secret_string(value)
        .send()
        .await
        .expect("LocalStack Secrets Manager takes the secret");
    name
}

async fn connect(settings: &RedisSettings) -> Result<RedisStore, String> {
    let store = RedisStore::connect(settings).map_err(|e| e.to_string())?;
    store
        .ready(Duration::from_secs(2))
        .await
        .map_err(|e| e.to_string())?;
    Ok(store)
}

#[tokio::test]
async fn buy_works_over_tls_with_the_auth_token_from_secrets_manager() {
    let pki = Pki::new();
    let token = format!("tok-{}", Uuid::new_v4().simple());
    let (_redis, tls_port) = tls_redis(&pki, &token);
    let secret = put_secret(&format!(r#"{{"password":"{token}"}}"#)).await;

    let settings = RedisSettings {
        url: format!("rediss://localhost:{tls_port}"),
        command_timeout: Duration::from_secs(2).into(),
        ca_file: Some(pki.path("ca.pem")),
        secret: Some(secret),
        ..Default::default()
    }
    .with_secret(&aws::sdk_config().await)
    .await
    .unwrap();
    assert!(
        settings.auth.is_some(),
        "the token came from Secrets Manager"
    );
    let store = connect(&settings).await.unwrap();

    let t = TestApp::new().await;
    let def = sale(&fresh_sale_id(), 2, 1);
    store.load_sale(&def, 2).await.unwrap();
    let app = buy_app(store, t.sqs.clone(), &t.queue);
    let a = call(&app, local_buy(&def.id, "tls-buyer", None)).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.body["status"], "PENDING");
}

#[tokio::test]
async fn without_the_auth_token_the_tls_connection_is_refused() {
    let pki = Pki::new();
    let (_redis, tls_port) = tls_redis(&pki, "the-right-token-0001");
    let settings = RedisSettings {
        url: format!("rediss://localhost:{tls_port}"),
        command_timeout: Duration::from_secs(1).into(),
        ca_file: Some(pki.path("ca.pem")),
        ..Default::default()
    };
    let store = RedisStore::connect(&settings).unwrap();
    assert!(
        store.live_sale(&fresh_sale_id()).await.is_err(),
        "a command without AUTH must fail"
    );
}

#[tokio::test]
async fn a_redis_certificate_signed_by_another_ca_is_refused() {
    let pki = Pki::new();
    let (_redis, tls_port) = tls_redis(&pki, "tok-other-ca-000001");
    let err = connect(&RedisSettings {
        url: format!("rediss://:tok-other-ca-000001@localhost:{tls_port}"),
        command_timeout: Duration::from_secs(1).into(),
        ca_file: Some(pki.path("other-ca.pem")),
        ..Default::default()
    })
    .await
    .err()
    .expect("a certificate from another CA is refused");
    assert!(!err.is_empty());
    // The same server, the right CA: it is the CA that made the difference.
    connect(&RedisSettings {
        url: format!("rediss://:tok-other-ca-000001@localhost:{tls_port}"),
        command_timeout: Duration::from_secs(2).into(),
        ca_file: Some(pki.path("ca.pem")),
        ..Default::default()
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn rediss_never_falls_back_to_plaintext() {
    // The reproduction from the issue: `rediss://` to a plaintext Redis used to answer 202.
    let pki = Pki::new();
    let (redis, _tls_port) = tls_redis(&pki, "tok-plain-000000001");
    let settings = RedisSettings {
        url: format!("rediss://:tok-plain-000000001@localhost:{}", redis.port),
        command_timeout: Duration::from_millis(500).into(),
        ca_file: Some(pki.path("ca.pem")),
        ..Default::default()
    };
    let store = RedisStore::connect(&settings).unwrap();
    let t = TestApp::new().await;
    let app = buy_app(store, t.sqs.clone(), &t.queue);
    let a = call(&app, local_buy(&fresh_sale_id(), "plain-buyer", None)).await;
    assert_eq!(a.status, 503, "{}", a.body);
    // Nothing reached the server as a command: it counted no calls.
    let out = Command::new("redis-cli")
        .args(["-p", &redis.port.to_string(), "--no-auth-warning"])
        .args(["-a", "tok-plain-000000001", "info", "commandstats"])
        .output()
        .unwrap();
    let stats = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stats.contains("cmdstat_evalsha") && !stats.contains("cmdstat_ping"),
        "{stats}"
    );
}

#[test]
fn a_ca_file_with_a_plaintext_url_is_a_configuration_error() {
    let err = RedisStore::connect(&RedisSettings {
        url: "redis://127.0.0.1:6379".into(),
        ca_file: Some("/etc/ssl/certs/ca-certificates.crt".into()),
        ..Default::default()
    })
    .err()
    .expect("refused");
    assert!(err.to_string().contains("REDIS_CA_FILE"), "{err}");
}

/// Three TLS-only cluster masters (`--tls-cluster yes`: nodes announce their TLS ports), joined.
fn start_tls_cluster(pki: &Pki) -> Vec<(PrivateRedis, u16)> {
    let nodes: Vec<(PrivateRedis, u16)> = (0..3)
        .map(|_| {
            let tls_port = free_port();
            let mut args = pki.redis_args(tls_port);
            args.extend(
                [
                    "--tls-cluster",
                    "yes",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ]
                .map(str::to_owned),
            );
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let node = PrivateRedis::start(&args);
            wait_for_port(tls_port);
            (node, tls_port)
        })
        .collect();
    let tls = ["--tls", "--cacert", &pki.path("ca.pem")];
    let out = Command::new("redis-cli")
        .args(tls)
        .args(["--cluster", "create"])
        .args(nodes.iter().map(|(_, p)| format!("127.0.0.1:{p}")))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let until = Instant::now() + Duration::from_secs(20);
    while !nodes.iter().all(|(n, _)| {
        let info = Command::new("redis-cli")
            .args(["-p", &n.port.to_string(), "cluster", "info"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok")
    }) {
        assert!(Instant::now() < until, "TLS cluster did not become ok");
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes
}

#[tokio::test]
async fn buy_works_on_a_tls_cluster_with_the_endpoint_name_checked_on_every_node() {
    let pki = Pki::new();
    let nodes = start_tls_cluster(&pki);
    let store = connect(&RedisSettings {
        url: format!("rediss-cluster://localhost:{}", nodes[0].1),
        command_timeout: Duration::from_secs(3).into(),
        ca_file: Some(pki.path("ca.pem")),
        ..Default::default()
    })
    .await
    .unwrap();
    let t = TestApp::new().await;
    // Sales on several shards, so more than one node's certificate is checked.
    let sales: Vec<_> = (0..6).map(|_| sale(&fresh_sale_id(), 1, 1)).collect();
    for def in &sales {
        store.load_sale(def, 1).await.unwrap();
    }
    let app = buy_app(store, t.sqs.clone(), &t.queue);
    for def in &sales {
        let a = call(&app, local_buy(&def.id, "cluster-buyer", None)).await;
        assert_eq!(a.status, 202, "{}", a.body);
    }
}

#[tokio::test]
async fn postgres_with_verify_full_refuses_a_certificate_no_trusted_ca_signed() {
    // The local server's certificate is self-signed (Debian's snakeoil): not in the system roots.
    let base = std::env::var("TEST_DATABASE_URL").unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let db = Db::new(&format!("{base}{sep}sslmode=verify-full")).unwrap();
    let err = db.client().await.err().expect("not verified, not trusted");
    assert!(!err.to_string().is_empty());
}

#[tokio::test]
async fn postgres_credentials_come_from_secrets_manager() {
    // The URL holds no user or password: the secret supplies both, as in AWS.
    let base = std::env::var("TEST_DATABASE_URL").unwrap();
    let url = url_without_credentials(&base);
    let (user, password) = credentials_of(&base);
    let sdk = aws::sdk_config().await;
    let connect_as = |username: String| {
        let (url, password, sdk) = (url.clone(), password.clone(), sdk.clone());
        async move {
            let secret = put_secret(&format!(
                r#"{{"username":"{username}","password":"{password}","engine":"postgres"}}"#
            ))
            .await;
            let settings = DatabaseSettings {
                url: url.to_owned(),
                secret: Some(secret),
                ..DatabaseSettings::default()
            }
            .with_secret(&sdk)
            .await
            .unwrap();
            let db = Db::from_settings(&settings).unwrap();
            let conn = db.client().await.map_err(|e| e.to_string())?;
            let who: String = conn
                .query_one("select current_user::text", &[])
                .await
                .unwrap()
                .get(0);
            Ok::<_, String>(who)
        }
    };
    assert_eq!(connect_as(user.clone()).await.unwrap(), user);
    // The secret's user is the one used: a role that does not exist cannot connect.
    assert!(connect_as("ff_no_such_role".into()).await.is_err());
}

#[tokio::test]
async fn an_unknown_secret_fails_start_up_with_its_name_and_no_value() {
    let settings = RedisSettings {
        secret: Some("flashflow-test/does-not-exist".into()),
        ..Default::default()
    };
    let err = settings
        .with_secret(&aws::sdk_config().await)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("flashflow-test/does-not-exist"), "{err}");
}

fn url_without_credentials(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(s), Some(at)) => format!("{}{}", &url[..s + 3], &url[at + 1..]),
        _ => url.to_owned(),
    }
}

fn credentials_of(url: &str) -> (String, String) {
    let s = url.find("://").unwrap() + 3;
    let at = url.find('@').expect("TEST_DATABASE_URL has credentials");
    let (user, password) = url[s..at].split_once(':').unwrap_or((&url[s..at], ""));
    (user.to_owned(), password.to_owned())
}

#[tokio::test]
async fn the_order_signing_key_and_the_admission_key_are_read_from_their_named_secrets() {
    use flashflow::domain::{BuyerId, SaleId};
    use flashflow_adapters::keys::{AdmissionSettings, SigningSettings};
    let key = format!(
        "key-{}-{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    );
    let secret = put_secret(&key).await;
    let sdk = aws::sdk_config().await;
    let env_key = || Some(key.clone().into());
    // The secret wins over a key in the environment, as the template sets only the secret.
    let decoy = || Some("a-different-key-of-at-least-32-bytes!!".to_owned().into());

    let from_secret = SigningSettings {
        key: decoy(),
        secret: Some(secret.clone()),
    };
    let from_env = SigningSettings {
        key: env_key(),
        secret: None,
    };
    let (a, b) = (
        from_secret.signer(&sdk).await.unwrap(),
        from_env.signer(&sdk).await.unwrap(),
    );
    assert_eq!(a.sign("body"), b.sign("body"), "the secret's key signs");

    let rooms = AdmissionSettings {
        key: decoy(),
        secret: Some(secret),
    };
    let keys = rooms.keys(&sdk).await.unwrap().expect("a key");
    let (sale, buyer) = (SaleId::parse("s").unwrap(), BuyerId::parse("b").unwrap());
    let env_keys = AdmissionSettings {
        key: env_key(),
        secret: None,
    };
    let place = flashflow::domain::waiting_room::tokens::TicketPlace { index: 7, epoch: 1 };
    let ticket = env_keys
        .required_keys(&sdk)
        .await
        .unwrap()
        .ticket(&sale, &buyer, place);
    assert_eq!(keys.open_ticket(&ticket, &sale, &buyer), Some(place));
    assert!(AdmissionSettings::default()
        .keys(&sdk)
        .await
        .unwrap()
        .is_none());
}
