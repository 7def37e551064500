//! Builds the default app, `guest/hello`, for `wasm32-wasip2` as part of the
//! normal cargo build and hands its path to the crate as `SNOW_GUEST_HELLO`
//! for embedding. The modules only the tests load are built by the
//! `snow-test-guests` dev-dependency instead, so `cargo build` and
//! `cargo run` of snow skip them.

fn main() {
    snow_guest_build::rerun_if_changed(&[
        "guest/hello",
        "guest/sdk",
        "guest/macros",
        "wit",
        "Cargo.lock",
    ]);
    let hello = snow_guest_build::build(&["hello"]).remove(0);
    println!("cargo:rustc-env=SNOW_GUEST_HELLO={}", hello.display());
}
