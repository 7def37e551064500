use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::ValueEnum;
use snow_bench::response::{self, Progress};
use snow_bench::target::Target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// How a new version reaches the server.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// Written to a temporary file beside the module, then renamed over it:
    /// the server never sees a partly written module.
    Rename,
    /// Written straight into the module file, the way a plain copy does.
    Overwrite,
    /// Sent to the admin API as `PUT /modules/NAME`.
    Put,
}

/// A change under way: when it began, and for a PUT the request still
/// waiting for its answer.
pub struct Started {
    pub at: Instant,
    pub put: Option<JoinHandle<Result<(u16, Duration), String>>>,
}

/// Where the changes go: the watched module file, or the admin URL.
pub struct Destination {
    pub file: Option<PathBuf>,
    pub admin: Option<Target>,
}

/// Starts replacing the served module with `wasm`. The clock starts at the
/// first moment the server could notice: the rename, the first byte of the
/// overwrite, or the PUT being sent. Preparing the temporary file is not
/// part of it.
pub fn start(via: Via, to: &Destination, wasm: &[u8]) -> io::Result<Started> {
    match via {
        Via::Rename => {
            let file = module_file(to)?;
            let tmp = temporary_beside(file);
            fs::write(&tmp, wasm)?;
            let at = Instant::now();
            fs::rename(&tmp, file)?;
            Ok(Started { at, put: None })
        }
        Via::Overwrite => {
            let file = module_file(to)?;
            let at = Instant::now();
            fs::write(file, wasm)?;
            Ok(Started { at, put: None })
        }
        Via::Put => {
            let admin = to.admin.as_ref().ok_or_else(|| missing("--admin"))?;
            let addr = admin.addr;
            let path = admin.path.clone().unwrap_or_default();
            let mut request = admin.put_head(&path, wasm.len());
            request.extend_from_slice(wasm);
            let at = Instant::now();
            let put = tokio::spawn(async move {
                let status = put(addr, &request).await?;
                Ok((status, at.elapsed()))
            });
            Ok(Started { at, put: Some(put) })
        }
    }
}

fn module_file(to: &Destination) -> io::Result<&Path> {
    to.file.as_deref().ok_or_else(|| missing("--file"))
}

fn missing(flag: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("{flag} is required"))
}

/// In the same directory, so the rename stays on one file system and is
/// atomic; a dot name the server's watcher does not mistake for the module.
fn temporary_beside(file: &Path) -> PathBuf {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    file.with_file_name(format!(".{name}.swap-{}", std::process::id()))
}

/// Sends one PUT on a fresh connection and returns the response status.
async fn put(addr: std::net::SocketAddr, request: &[u8]) -> Result<u16, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("put_connect_{:?}", e.kind()))?;
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("put_write_{:?}", e.kind()))?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        let read = stream
            .read_buf(&mut buf)
            .await
            .map_err(|e| format!("put_read_{:?}", e.kind()))?;
        match response::parse(&buf, read == 0)? {
            Progress::Complete(reply) => return Ok(reply.status),
            Progress::Incomplete => {}
        }
    }
}
