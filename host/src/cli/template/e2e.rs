//! The module served by the real `snow` binary: `SNOW_BIN` when set, else
//! `snow` on the PATH.

use std::time::{Duration, Instant};

use snow_testing::{build_module, Error, Snow};

#[test]
fn serves_its_routes_through_snow() -> Result<(), Error> {
    let wasm = build_module(env!("CARGO_MANIFEST_DIR"))?;
    let server = Snow::module(&wasm).start()?;
    let home = server.get("/home/");
    assert_eq!((home.status, home.text().as_str()), (200, "Hello from Snow!"));
    assert_eq!(server.post("/echo/", "ping").body, b"ping");
    assert_eq!(server.get("/nope/").status, 404);
    // With no configuration the host gives the module a memory store.
    assert_eq!(server.post("/visits/", "").text(), "visit 1");
    assert_eq!(server.post("/visits/", "").text(), "visit 2");
    assert!(server.stop()?.success(), "snow stops cleanly on SIGTERM");
    Ok(())
}

#[test]
fn a_waiting_request_does_not_hold_up_others() -> Result<(), Error> {
    let wasm = build_module(env!("CARGO_MANIFEST_DIR"))?;
    let server = Snow::module(&wasm).args(["--workers", "1"]).start()?;
    std::thread::scope(|scope| {
        let slow = scope.spawn(|| server.get("/wait/?ms=1000"));
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        assert_eq!(server.get("/home/").status, 200);
        assert!(started.elapsed() < Duration::from_millis(900));
        let slow = slow.join().expect("the waiting request");
        assert_eq!(slow.text(), "waited 1000 ms");
    });
    Ok(())
}
