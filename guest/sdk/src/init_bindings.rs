//! Generated glue for the `initialize` world of `wit-init/initialize.wit`,
//! which a module built with the `wasi-http` feature exports beside
//! `wasi:http/proxy`.

wit_bindgen::generate!({
    world: "initialize",
    path: "wit-init",
    pub_export_macro: true,
    export_macro_name: "__export_initialize",
    default_bindings_module: "snow_guest::init_bindings",
});
