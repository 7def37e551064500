//! Version "two" of the module the hot-swap tests deploy back and forth.

const VERSION: &str = "two";

include!("../../versioned.rs");
