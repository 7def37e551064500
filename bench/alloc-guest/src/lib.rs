//! The default app's `/home/` route, built once per allocator by
//! `bench/sh/allocator.sh`: the SDK's size classes (feature `classes`),
//! `talc` (feature `talc`), or the standard library's (neither).
//! talc is safe here only because this module never reads its environment
//! or anything else wasi-libc would later free (see `guest/sdk/src/alloc.rs`).

#[cfg(all(feature = "classes", feature = "talc"))]
compile_error!("choose one allocator: `classes` or `talc`");

#[cfg(all(feature = "talc", target_arch = "wasm32"))]
#[global_allocator]
static TALC: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

use snow_guest::Request;

snow_guest::app!([(r"^/home/$", home)]);

fn home(_: Request) -> &'static str {
    "home"
}
