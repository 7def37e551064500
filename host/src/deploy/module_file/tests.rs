use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, Instant};

use super::*;

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("snow-module-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).expect("no NUL in the path");
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn a_file_up_to_the_cap_is_read_whole() {
    let dir = TempDir::new("fits");
    let path = dir.0.join("m.wasm");
    std::fs::write(&path, [7u8; 16]).expect("write");
    assert_eq!(read_capped(&path, 16).expect("read"), vec![7u8; 16]);
}

#[test]
fn a_file_one_byte_over_the_cap_is_refused() {
    let dir = TempDir::new("over");
    let path = dir.0.join("m.wasm");
    std::fs::write(&path, [7u8; 17]).expect("write");
    let err = read_capped(&path, 16).expect_err("over the cap");
    assert!(
        matches!(err, ModuleFileError::TooLarge { size: 17, .. }),
        "{err}"
    );
    assert!(err.is_refusal());
    assert!(err.to_string().contains("m.wasm"), "{err}");
}

#[test]
fn a_sparse_file_past_the_real_cap_is_refused_without_reading_it() {
    let dir = TempDir::new("sparse");
    let path = dir.0.join("m.wasm");
    let file = std::fs::File::create(&path).expect("create");
    file.set_len(MAX_MODULE_SIZE + 1).expect("set_len");
    let err = read_module_file(&path).expect_err("over the cap");
    assert!(
        matches!(err, ModuleFileError::TooLarge { size, .. } if size == MAX_MODULE_SIZE + 1),
        "{err}"
    );
}

#[test]
fn dev_zero_is_refused_at_once() {
    let started = Instant::now();
    let err = read_module_file(Path::new("/dev/zero")).expect_err("a device");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        err.to_string(),
        "module /dev/zero is a character device, not a regular file"
    );
}

#[test]
fn a_fifo_is_refused_without_waiting_for_a_writer() {
    let dir = TempDir::new("fifo");
    let path = dir.0.join("m.wasm");
    mkfifo(&path);
    let started = Instant::now();
    let err = read_module_file(&path).expect_err("a FIFO");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(err, ModuleFileError::NotRegular { kind: "a FIFO", .. }),
        "{err}"
    );
}

#[test]
fn a_directory_and_a_missing_file_are_errors_naming_the_path() {
    let dir = TempDir::new("dir");
    let err = read_module_file(&dir.0).expect_err("a directory");
    assert!(
        matches!(
            err,
            ModuleFileError::NotRegular {
                kind: "a directory",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains(&*dir.0.to_string_lossy()), "{err}");

    let missing = dir.0.join("missing.wasm");
    let err = read_module_file(&missing).expect_err("missing");
    assert!(matches!(err, ModuleFileError::Open { .. }), "{err}");
    assert!(!err.is_refusal());
    assert!(err.to_string().contains("missing.wasm"), "{err}");
}
