//! Version "one" of the module the hot-swap tests deploy back and forth.

const VERSION: &str = "one";

include!("../../versioned.rs");
