//! A real Redis server for the shared-store tests: Debian's `redis-server` on a free
//! loopback port, stopped when dropped. Faults are real: the process is paused and resumed
//! with signals, killed, and started again with or without the data it had.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Redis {
    pub port: u16,
    child: Option<Child>,
    /// Where a snapshot taken before a restart lives, so the restarted server loads it.
    dir: tempfile::TempDir,
}

impl Redis {
    /// Starts a server and waits until it answers `PING`.
    pub async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis {
            port,
            child: None,
            dir: tempfile::tempdir().unwrap(),
        };
        redis.spawn();
        redis
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is missing: install it with `sudo apt-get install redis-server` (.ci/redis.sh does)");
        self.child = Some(child);
        // Readiness is a signal, not a sleep: the first PING that answers.
        for _ in 0..500 {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not answer on port {}", self.port);
    }

    /// Whether the server answers `PING` (a raw RESP exchange: the test needs no client).
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        if stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        stream.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// How many times the server has run `command` (lowercase, e.g. "ping"), from
    /// `INFO commandstats`.
    pub fn calls(&self, command: &str) -> u64 {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.write_all(b"INFO commandstats\r\n").unwrap();
        let mut reader = BufReader::new(stream);
        let mut head = String::new();
        reader.read_line(&mut head).unwrap();
        let len: usize = head.trim().trim_start_matches('$').parse().unwrap();
        let mut info = vec![0; len];
        reader.read_exact(&mut info).unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        String::from_utf8(info)
            .unwrap()
            .lines()
            .find_map(|line| line.strip_prefix(&prefix)?.split(',').next()?.parse().ok())
            .unwrap_or(0)
    }

    /// Runs one command and gives its answer as text: a simple string, an integer or a
    /// bulk string as one element, an array as its elements (a nil as an empty string).
    pub fn query(&self, args: &[&str]) -> Vec<String> {
        use std::io::{BufReader, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut request = format!("*{}\r\n", args.len());
        for arg in args {
            request.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        let mut reader = BufReader::new(stream);
        let mut values = Vec::new();
        read_value(&mut reader, &mut values);
        values
    }

    /// Pauses the server (SIGSTOP): it holds its connections and answers nothing until
    /// [`Self::resume`], like a store that stalls.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Resumes a paused server (SIGCONT).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("redis-server runs").id();
        super::signal(pid, name);
    }

    /// Kills the server and starts it again on the same port: with the data it held
    /// (`keep_data`, from a snapshot taken first), or empty.
    pub fn restart(&mut self, keep_data: bool) {
        let snapshot = self.dir.path().join("dump.rdb");
        if keep_data {
            assert_eq!(self.query(&["SAVE"]), ["OK"]);
        }
        self.stop();
        if !keep_data {
            let _ = std::fs::remove_file(&snapshot);
        }
        self.spawn();
    }

    /// Stops the server (SIGKILL) and waits until it is gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Reads one RESP value into `values` (an array's elements one by one).
fn read_value(reader: &mut impl std::io::BufRead, values: &mut Vec<String>) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let line = line.trim_end();
    let (kind, rest) = line.split_at(1);
    match kind {
        "+" | ":" => values.push(rest.to_owned()),
        "-" => panic!("redis answered an error: {rest}"),
        "$" => {
            let Ok(len) = rest.parse::<usize>() else {
                values.push(String::new());
                return;
            };
            let mut bulk = vec![0; len + 2];
            reader.read_exact(&mut bulk).unwrap();
            bulk.truncate(len);
            values.push(String::from_utf8(bulk).unwrap());
        }
        "*" => {
            for _ in 0..rest.parse::<usize>().unwrap_or(0) {
                read_value(reader, values);
            }
        }
        other => panic!("unexpected RESP type {other:?}"),
    }
}
