//! Which world a component implements, read from its top-level exports
//! before anything is compiled: a Snow module (`snow:http/handler`) or a
//! standard `wasi:http/proxy` component (`wasi:http/incoming-handler`).
//! The answer decides how it is compiled (only Snow modules are
//! pre-initialised), linked, isolated and called.

use anyhow::{Context as _, Result};
use wasmparser::{Parser, Payload};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `snow:http/module`: many requests parked in one instance.
    Snow,
    /// `wasi:http/proxy` of WASI 0.2: one request per call of `handle`.
    Proxy,
}

impl World {
    /// Both worlds' exports are matched by interface, not version: a
    /// proxy component of any WASI 0.2 release links against wasmtime's,
    /// and a Snow module of another contract version is refused later with
    /// a message naming both versions.
    pub fn of(wasm: &[u8]) -> Result<World> {
        Ok(Exports::of(wasm)?.world)
    }

    /// How `GET /modules` and `snow check` name it.
    pub fn name(self) -> &'static str {
        match self {
            World::Snow => "snow:http/module",
            World::Proxy => "wasi:http/proxy",
        }
    }
}

/// The top-level function a standard component may export for a host to
/// run once and snapshot (wasmtime's Wizer convention); the SDK's
/// `wasi-http` builds export it.
pub const INITIALIZER: &str = "wizer-initialize";

/// What a component's own exports (not those of components or modules
/// nested in it) say about it, read in one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exports {
    pub world: World,
    /// Whether it exports [`INITIALIZER`].
    pub initializer: bool,
}

impl Exports {
    pub fn of(wasm: &[u8]) -> Result<Exports> {
        check_header(wasm)?;
        let mut found = Exports {
            world: World::Snow,
            initializer: false,
        };
        let mut depth = 0usize;
        for payload in Parser::new(0).parse_all(wasm) {
            match payload.context("reading the component")? {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth = depth.saturating_sub(1),
                Payload::ComponentExportSection(exports) if depth == 0 => {
                    for export in exports {
                        let name = export.context("reading the component's exports")?.name.name;
                        if name.starts_with("wasi:http/incoming-handler@0.2.") {
                            found.world = World::Proxy;
                        } else if name == INITIALIZER {
                            found.initializer = true;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(found)
    }
}

fn check_header(wasm: &[u8]) -> Result<()> {
    if !wasm.starts_with(b"\0asm") {
        anyhow::bail!("not a WebAssembly file (no \\0asm header)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::World;

    const HELLO: &[u8] = include_bytes!(env!("SNOW_GUEST_HELLO"));

    #[test]
    fn worlds_are_told_apart() {
        assert_eq!(World::of(HELLO).expect("hello parses"), World::Snow);
        let standard = std::fs::read(snow_test_guests::STANDARD).expect("built");
        assert_eq!(World::of(&standard).expect("parses"), World::Proxy);
    }

    #[test]
    fn hostile_bytes_are_refused_with_a_reason() {
        let err = World::of(b"MZ\x90\0 not wasm").expect_err("not wasm");
        assert!(err.to_string().contains("no \\0asm header"), "{err}");
        let standard = std::fs::read(snow_test_guests::STANDARD).expect("built");
        // Cut before its exports: an error, not a guess. (A cut after
        // them is told apart here and refused by the compiler.)
        for cut in [4, 9, 100] {
            let result = World::of(&standard[..cut]);
            assert!(
                result.is_err(),
                "a component cut at {cut} bytes: {result:?}"
            );
        }
        // A Snow module naming the proxy interface in a custom section or
        // a string is still a Snow module: only top-level exports count.
        let mut decoy = HELLO.to_vec();
        let name = b"wasi:http/incoming-handler@0.2.0";
        decoy.push(0);
        decoy.push((name.len() + 1) as u8);
        decoy.push(name.len() as u8);
        decoy.extend_from_slice(name);
        assert_eq!(World::of(&decoy).expect("a custom section"), World::Snow);
    }
}
