//! A private PostgreSQL that speaks only TLS, for one test: its own port, data directory and
//! certificates in the temp dir (a CA, a server certificate it signed for `localhost`, and a
//! second CA that signed nothing the server shows). Stopped and removed when dropped, which
//! also happens when the test panics.

use std::io::Write;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The server's operating-system user when the test runs as root: initdb refuses root.
const SERVER_USER: &str = "postgres";

pub struct TlsPostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

impl TlsPostgres {
    /// Starts the server, or returns `None`, having said so on the terminal, when PostgreSQL's
    /// server programs are not installed.
    pub fn start() -> Option<Self> {
        let Some(bin) = server_bin() else {
            // Straight to stderr: the harness shows printed output only for failing tests,
            // and a skip must not look like a pass.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED: no initdb found (PostgreSQL's server is not installed)"
            );
            return None;
        };
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("callq-pgtls-{port}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("server directory");
        let server = Self { port, dir, bin };
        server.make_certificates();
        server.init();
        server.pg_ctl(&[
            "-l",
            &server.path("postgres.log"),
            "-w",
            "-t",
            "60",
            "start",
        ]);
        Some(server)
    }

    /// A URL to database `database` through `host` (which the certificate may or may not
    /// name) with `query` (sslmode and friends).
    pub fn url(&self, host: &str, database: &str, query: &str) -> String {
        format!(
            "postgres://postgres@{host}:{}/{database}?{query}",
            self.port
        )
    }

    /// The CA that signed the server's certificate.
    pub fn ca(&self) -> String {
        self.path("ca.crt")
    }

    /// A CA that signed nothing the server shows.
    pub fn other_ca(&self) -> String {
        self.path("other-ca.crt")
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    fn make_certificates(&self) {
        const EC: &str = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
        for ca in ["ca", "other-ca"] {
            openssl(
                &self.dir,
                &format!(
                    "req -x509 {EC} -days 2 -subj /CN=callq-test-{ca} \
                     -addext basicConstraints=critical,CA:TRUE \
                     -addext keyUsage=critical,keyCertSign,cRLSign \
                     -keyout {ca}.key -out {ca}.crt"
                ),
            );
        }
        openssl(
            &self.dir,
            &format!("req -new {EC} -subj /CN=localhost -keyout server.key -out server.csr"),
        );
        // webpki checks the name against subjectAltName only, never the CN.
        std::fs::write(
            self.dir.join("server.ext"),
            "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("extensions file");
        openssl(
            &self.dir,
            "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -set_serial 2 -days 2 \
             -extfile server.ext -out server.crt",
        );
        // Postgres refuses a key others may read.
        std::fs::set_permissions(
            self.dir.join("server.key"),
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )
        .expect("key permissions");
    }

    fn init(&self) {
        let data = self.path("data");
        if running_as_root() {
            run(Command::new("chown")
                .args(["-R", SERVER_USER])
                .arg(&self.dir));
        }
        run(as_server_user(&self.bin.join("initdb"))
            .args(["-D", &data, "-U", "postgres", "--auth=trust"])
            .args(["-E", "UTF8", "--locale=C"]));
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(Path::new(&data).join("postgresql.conf"))
            .expect("postgresql.conf");
        write!(
            conf,
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'\n",
            self.port,
            self.dir.display(),
            self.path("server.crt"),
            self.path("server.key"),
        )
        .expect("postgresql.conf");
        // TCP only with TLS: a plain connection is refused, so whatever reaches a table
        // came through TLS.
        std::fs::write(
            Path::new(&data).join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("pg_hba.conf");
    }

    fn pg_ctl(&self, args: &[&str]) {
        run(as_server_user(&self.bin.join("pg_ctl"))
            .args(["-D", &self.path("data")])
            .args(args));
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = as_server_user(&self.bin.join("pg_ctl"))
            .args(["-D", &self.path("data"), "-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `pg_config --bindir`, else the newest /usr/lib/postgresql/<version>/bin with an initdb.
fn server_bin() -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .collect();
    versions.sort_by_key(|path| {
        path.parent()
            .and_then(|version| version.file_name())
            .and_then(|name| name.to_str())
            .and_then(|name| name.parse::<u32>().ok())
    });
    from_pg_config
        .into_iter()
        .chain(versions.into_iter().rev())
        .find(|bin| bin.join("initdb").exists())
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

fn as_server_user(program: &Path) -> Command {
    if running_as_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", SERVER_USER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn openssl(dir: &Path, args: &str) {
    run(Command::new("openssl")
        .current_dir(dir)
        .args(args.split_whitespace()));
}

fn run(command: &mut Command) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
