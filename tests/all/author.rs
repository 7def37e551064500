//! A module author's path, in a folder outside the workspace: `snow new`,
//! `snow build`, the generated crate's own tests through this binary,
//! `snow check`, then `snow dev` reloading edits while requests run.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use snow_testing::Snow;

const SNOW: &str = env!("CARGO_BIN_EXE_snow");

/// A cold build of the generated crate's dependencies can take minutes on
/// a loaded machine: a sanity bound, not a measurement.
const BUILD_PATIENCE: Duration = Duration::from_secs(300);

/// Runs `program` in `dir` with the crate's builds in a target dir that
/// outlives the folder, so reruns are warm.
fn run(dir: &Path, program: &str, args: &[&str]) -> Output {
    let output = Command::new(program)
        .current_dir(dir)
        .args(args)
        .env("SNOW_BIN", SNOW)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("SNOW_CACHE_DIR", target_dir().join("snow-cache"))
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap_or_else(|e| panic!("running {program} {args:?}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} in {} failed ({}):\n{}\n{}",
        dir.display(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("author-target")
}

/// A fresh folder under the system's temp dir, outside the workspace.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("snow-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating the scratch folder");
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_new_module_builds_passes_its_tests_and_reloads_in_dev() {
    let base = scratch("author");
    let created = run(&base, SNOW, &["new", "demo"]);
    assert!(text(&created.stdout).contains("created module `demo`"));
    let demo = base.join("demo");

    let built = run(&demo, SNOW, &["build"]);
    let stdout = text(&built.stdout);
    let wasm = PathBuf::from(stdout.lines().next().expect("the component's path"));
    assert!(wasm.is_file(), "{} is not a file", wasm.display());
    assert!(stdout.contains("ok, 4 routes"), "{stdout}");

    let tested = run(&demo, "cargo", &["test"]);
    let report = text(&tested.stdout);
    assert!(
        report.contains("test serves_its_routes_through_snow ... ok"),
        "{report}"
    );
    assert!(
        report.contains("test tests::home_answers ... ok"),
        "{report}"
    );

    let checked = run(&demo, SNOW, &["check", wasm.to_str().expect("UTF-8 path")]);
    let routes = text(&checked.stdout);
    for route in [
        "GET        ^/home/$",
        "GET        ^/wait/$",
        "POST       ^/echo/$",
    ] {
        assert!(routes.contains(route), "{route} missing from {routes}");
    }

    // The same module as a standard component; dev then builds Snow's again.
    let standard = run(&demo, SNOW, &["build", "--wasi-http"]);
    let stdout = text(&standard.stdout);
    assert!(
        stdout.contains("ok, a wasi:http/proxy component"),
        "{stdout}"
    );

    dev_reloads_edits_and_survives_broken_ones(&demo);
    let _ = std::fs::remove_dir_all(&base);
}

fn dev_reloads_edits_and_survives_broken_ones(demo: &Path) {
    let server = Snow::dev(demo)
        .binary(SNOW)
        .env("CARGO_TARGET_DIR", target_dir())
        .env("SNOW_CACHE_DIR", target_dir().join("snow-cache"))
        .start()
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(server.get("/home/").text(), "Hello from Snow!");

    let source = demo.join("src/lib.rs");
    let original = std::fs::read_to_string(&source).expect("reading lib.rs");
    let (stop, sent, failed) = (
        AtomicBool::new(false),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    std::thread::scope(|scope| {
        // Requests run all through the reloads; none may fail.
        scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let answer = server.get("/home/");
                let known = ["Hello from Snow!", "Hello again!"].contains(&answer.text().as_str());
                if answer.status != 200 || !known {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                sent.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let edited = original.replacen("\"Hello from Snow!\"", "\"Hello again!\"", 1);
        assert_ne!(edited, original, "the template's greeting moved");
        std::fs::write(&source, edited).expect("editing lib.rs");
        let until = Instant::now() + BUILD_PATIENCE;
        while server.get("/home/").text() != "Hello again!" {
            assert!(Instant::now() < until, "the edit never served");
            std::thread::sleep(Duration::from_millis(100));
        }

        let mut broken = std::fs::read_to_string(&source).expect("reading lib.rs");
        broken.push_str("\nthis is not rust\n");
        std::fs::write(&source, broken).expect("breaking lib.rs");
        server.wait_log("build failed, the last good version keeps serving");
        assert_eq!(server.get("/home/").text(), "Hello again!");
        stop.store(true, Ordering::Relaxed);
    });
    assert!(sent.load(Ordering::Relaxed) > 0);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during reloads"
    );
    assert!(server.stop().expect("stopping snow dev").success());
}
