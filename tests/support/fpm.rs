//! php-fpm + nginx, the pair that tests/apps_debian.rs compares Spindle
//! with: Debian's php8.2-fpm (its own php.ini and conf.d) with one static
//! pool, and nginx-light in front, each with its configuration in a private
//! directory and nginx on a free loopback port. `scripts/deps.sh test`
//! installs both.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::TempDir;

pub struct NginxFpm {
    fpm: Child,
    nginx: Child,
    pub port: u16,
    dir: TempDir,
}

/// The user PHP runs as on both servers: www-data when the test runs as
/// root (as Debian's packages expect: their writable directories belong to
/// it), else the test's own user.
pub fn php_user() -> Option<&'static str> {
    nix::unistd::geteuid().is_root().then_some("www-data")
}

impl NginxFpm {
    /// `server` is the inside of nginx's `server {}` block; `{fpm}` in it
    /// becomes the php-fpm socket (`fastcgi_pass unix:{fpm};`). `env` are
    /// the pool's `env[...]` entries, `ini` its `php_admin_value[...]`.
    pub fn start(server: &str, env: &[(&str, &str)], ini: &[(&str, &str)]) -> NginxFpm {
        let dir = TempDir::new("nginx-fpm");
        // nginx's and php-fpm's workers must reach the socket.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let d = dir.path().display().to_string();
        let sock = dir.path().join("fpm.sock");
        let mut pool = format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n\
             [app]\nlisten = {}\nlisten.mode = 0666\npm = static\npm.max_children = 2\n\
             catch_workers_output = yes\n",
            sock.display()
        );
        if let Some(user) = php_user() {
            pool.push_str(&format!("user = {user}\ngroup = {user}\n"));
        }
        for (k, v) in env {
            pool.push_str(&format!("env[{k}] = {v}\n"));
        }
        for (k, v) in ini {
            pool.push_str(&format!("php_admin_value[{k}] = {v}\n"));
        }
        std::fs::write(dir.path().join("fpm.conf"), pool).unwrap();
        let fpm = Command::new("php-fpm8.2")
            .arg("-F")
            .arg("-y")
            .arg(dir.path().join("fpm.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("php-fpm8.2 (scripts/deps.sh test installs php8.2-fpm)");

        let port = free_port();
        let server = server.replace("{fpm}", &sock.display().to_string());
        let main = format!(
            "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 256; }}\n\
             http {{\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n  \
             access_log off;\n  client_max_body_size 64m;\n  \
             client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n{server}\n  }}\n}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), main).unwrap();
        let nginx = Command::new("nginx")
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("error.log")).unwrap())
            .spawn()
            .expect("nginx (scripts/deps.sh test installs nginx-light)");
        let pair = NginxFpm {
            fpm,
            nginx,
            port,
            dir,
        };
        let end = Instant::now() + Duration::from_secs(15);
        while !(sock.exists() && TcpStream::connect(("127.0.0.1", port)).is_ok()) {
            assert!(
                Instant::now() < end,
                "nginx + php-fpm did not start in 15s:\n{}",
                pair.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        pair
    }

    /// nginx's and php-fpm's error logs, for failure messages.
    pub fn log(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "nginx:\n{}\nphp-fpm:\n{}",
            read("error.log"),
            read("fpm.log")
        )
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Drop for NginxFpm {
    fn drop(&mut self) {
        // SIGTERM lets both masters stop their workers; SIGKILL would
        // orphan them.
        for child in [&mut self.nginx, &mut self.fpm] {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        }
        let end = Instant::now() + Duration::from_secs(5);
        for child in [&mut self.nginx, &mut self.fpm] {
            while Instant::now() < end {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
