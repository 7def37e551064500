use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::thread;

use tokio::sync::oneshot;
use tokio::time::Instant;

/// A line the bench script wrote while the load ran, stamped on arrival:
/// `swap NAME` as it starts deploying version NAME, `done STATUS` once the
/// deployment answered. Stamping here puts the swaps on the load's own
/// clock, with no wall clocks to line up between processes.
pub struct Mark {
    pub at: Instant,
    pub kind: Kind,
}

pub enum Kind {
    Swap(String),
    Done(String),
}

/// Reads marks from stdin on a thread of its own, so a blocking read never
/// stalls the load, and stamps each line as it arrives. The returned
/// receiver resolves when stdin closes.
pub fn read_stdin(marks: Arc<Mutex<Vec<Mark>>>) -> oneshot::Receiver<()> {
    let (closed_tx, closed_rx) = oneshot::channel();
    thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            let at = Instant::now();
            let kind = match line.split_once(' ') {
                Some(("swap", name)) => Kind::Swap(name.trim().to_string()),
                Some(("done", status)) => Kind::Done(status.trim().to_string()),
                _ => {
                    eprintln!("ignoring mark {line:?}: expected `swap NAME` or `done STATUS`");
                    continue;
                }
            };
            if let Ok(mut marks) = marks.lock() {
                marks.push(Mark { at, kind });
            }
        }
        let _ = closed_tx.send(());
    });
    closed_rx
}
