//! Generated glue for the `module` world of `wit/snow.wit`.
//!
//! Kept in one module so the rest of the SDK can stay in its own types; the
//! imports here are only reached on wasm32 (elsewhere they are stubs that
//! panic, and `host` routes calls to a fake instead).

wit_bindgen::generate!({
    world: "module",
    path: "wit",
    pub_export_macro: true,
    export_macro_name: "__export_module",
    default_bindings_module: "snow_guest::bindings",
});
