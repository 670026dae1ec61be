//! End to end: the real binary's console under tmux (Debian's tmux, which
//! .ci/run installs). Start `--demo`, wait for the workers, ask for one
//! more worker, confirm, see the scale-up appear, quit with `q`, exit 0.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::stack::BIN;

struct Tmux {
    socket: String,
    session: &'static str,
}

impl Tmux {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("tmux must be installed (.ci/run installs Debian's tmux)")
    }

    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.cmd(&["capture-pane", "-p", "-t", self.session]).stdout)
            .into_owned()
    }

    fn keys(&self, keys: &str) {
        self.cmd(&["send-keys", "-t", self.session, keys]);
    }

    /// The terminal is back as the shell had it, checked positively: tmux
    /// says the pane left the alternate screen and shows its cursor, and
    /// `stty -a`, run by the pane's shell after the console exited, shows
    /// canonical mode and echo (raw mode is off).
    fn assert_restored(&self, stty_file: &std::path::Path) {
        // tmux applies the pane's output asynchronously: poll (bounded)
        // rather than read once right after the process exited.
        let start = Instant::now();
        loop {
            let flags = String::from_utf8_lossy(
                &self
                    .cmd(&[
                        "display",
                        "-p",
                        "-t",
                        self.session,
                        "#{alternate_on} #{cursor_flag}",
                    ])
                    .stdout,
            )
            .trim()
            .to_string();
            if flags == "0 1" {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "alternate screen on / cursor hidden: {flags}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let start = Instant::now();
        let stty = loop {
            let text = std::fs::read_to_string(stty_file).unwrap_or_default();
            if text.contains("icanon") {
                break text;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no stty -a output"
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        let words: Vec<&str> = stty.split_whitespace().collect();
        for flag in ["icanon", "echo", "isig"] {
            assert!(
                words.contains(&flag),
                "{flag} not restored (raw mode left on):\n{stty}"
            );
        }
    }

    fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let screen = self.screen();
            if screen.contains(needle) {
                return screen;
            }
            assert!(
                start.elapsed() < timeout,
                "waited {timeout:?} for {needle:?}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .output();
    }
}

#[test]
fn console_confirms_a_scale_up_and_quits_cleanly() {
    let dir = std::env::temp_dir().join(format!("k3sa-tmux-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status_file: PathBuf = dir.join("status");
    let _ = std::fs::remove_file(&status_file);
    let tmux = Tmux {
        socket: format!("k3sa-test-{}", std::process::id()),
        session: "console",
    };
    let stty_file = dir.join("stty");
    let _ = std::fs::remove_file(&stty_file);
    let shell = format!(
        "{BIN} --demo --speed 20 --seed 3; echo $? > {}; stty -a > {}; sleep 30",
        status_file.display(),
        stty_file.display()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "console",
        "-x",
        "120",
        "-y",
        "40",
        &shell,
    ]);
    assert!(
        out.status.success(),
        "tmux failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    tmux.wait_for("Workers 5/5", Duration::from_secs(20));
    tmux.keys("+");
    let dialog = tmux.wait_for("Confirm", Duration::from_secs(5));
    assert!(dialog.contains("Scale-up +1?"), "{dialog}");
    assert!(dialog.contains("[ Cancel ]"), "{dialog}");
    tmux.keys("y");
    let screen = tmux.wait_for("scale-up +1 (operator)", Duration::from_secs(20));
    assert!(screen.contains("started op-"), "{screen}");
    tmux.keys("q");

    let start = Instant::now();
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && !text.trim().is_empty()
        {
            break text.trim().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no exit after q; screen:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, "0", "exit status after q");
    tmux.assert_restored(&stty_file);
}

#[test]
fn sigterm_quits_the_console_like_q() {
    let dir = std::env::temp_dir().join(format!("k3sa-tmux-term-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let status_file = dir.join("status");
    let _ = std::fs::remove_file(&status_file);
    let tmux = Tmux {
        socket: format!("k3sa-test-term-{}", std::process::id()),
        session: "console",
    };
    // tmux 3.3 does not always report a dead pane's status: the shell
    // around the binary writes it to a file instead.
    let stty_file = dir.join("stty");
    let _ = std::fs::remove_file(&stty_file);
    let shell = format!(
        "{BIN} --demo --read-only; echo $? > {}; stty -a > {}; sleep 30",
        status_file.display(),
        stty_file.display()
    );
    let out = tmux.cmd(&[
        "new-session",
        "-d",
        "-s",
        "console",
        "-x",
        "100",
        "-y",
        "30",
        &shell,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let screen = tmux.wait_for("READ-ONLY", Duration::from_secs(20));
    assert!(
        !screen.contains("+ worker"),
        "read-only footer shows a dangerous key:\n{screen}"
    );
    let shell_pid = String::from_utf8_lossy(
        &tmux
            .cmd(&["display", "-p", "-t", "console", "#{pane_pid}"])
            .stdout,
    )
    .trim()
    .to_string();
    let child = Command::new("pgrep")
        .args(["-P", &shell_pid])
        .output()
        .unwrap();
    let pid = String::from_utf8_lossy(&child.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(!pid.is_empty(), "no console process under the pane's shell");
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let start = Instant::now();
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && !text.trim().is_empty()
        {
            break text.trim().to_string();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still running 10 s after SIGTERM:\n{}",
            tmux.screen()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status, "0", "exit status after SIGTERM");
    tmux.assert_restored(&stty_file);
}
