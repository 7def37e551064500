//! Typed manifest values. Each kind of value reads itself from TOML with
//! serde; a value of the wrong type or form does not fail the whole
//! document but is kept as its message, so that the checker can name the
//! key and report the mistake nearest the top of the file.

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::time::Duration;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::config::{self, Isolation};
use crate::outbound::AllowRule;

/// The key toml gives a date or time, which serde sees as a one-key table.
const DATETIME_KEY: &str = "$__toml_private_datetime";

/// A kind of manifest value: what it reads from each TOML type.
pub(super) trait Kind {
    type Out;
    /// What a value of the wrong type is told to be, e.g. `a string`.
    const EXPECTING: &'static str;

    fn from_str(_text: &str) -> Result<Self::Out, String> {
        Err(Self::wrong("a string"))
    }

    fn from_int(_n: i64) -> Result<Self::Out, String> {
        Err(Self::wrong("an integer"))
    }

    fn from_bool(_b: bool) -> Result<Self::Out, String> {
        Err(Self::wrong("a boolean"))
    }

    fn wrong(found: &str) -> String {
        format!("expected {}, found {found}", Self::EXPECTING)
    }
}

/// A value of kind `K`, or why it is not one.
pub(super) struct Checked<K: Kind>(pub Result<K::Out, String>);

impl<'de, K: Kind> Deserialize<'de> for Checked<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(CheckedVisitor::<K>(PhantomData))
    }
}

struct CheckedVisitor<K>(PhantomData<K>);

impl<'de, K: Kind> Visitor<'de> for CheckedVisitor<K> {
    type Value = Checked<K>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(K::EXPECTING)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Checked(K::from_str(text)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Self::Value, E> {
        Ok(Checked(K::from_int(n)))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Self::Value, E> {
        Ok(Checked(match i64::try_from(n) {
            Ok(n) => K::from_int(n),
            Err(_) => Err(format!("`{n}` is too large")),
        }))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Self::Value, E> {
        Ok(Checked(K::from_bool(b)))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Checked(Err(K::wrong("a float"))))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Checked(Err(K::wrong("an array"))))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let first: Option<String> = map.next_key()?;
        let found = match first.as_deref() {
            Some(DATETIME_KEY) => "a date or time",
            _ => "a table",
        };
        if first.is_some() {
            map.next_value::<IgnoredAny>()?;
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        }
        Ok(Checked(Err(K::wrong(found))))
    }
}

/// An environment variable's value: a string, as written.
pub(super) enum EnvValue {}

impl Kind for EnvValue {
    type Out = String;
    const EXPECTING: &'static str = "a string";

    fn from_str(text: &str) -> Result<String, String> {
        Ok(text.to_string())
    }

    /// Quoting keeps the value exactly as written rather than as TOML
    /// prints it.
    fn wrong(found: &str) -> String {
        format!("expected a string, found {found}; quote it")
    }
}

pub(super) enum Flag {}

impl Kind for Flag {
    type Out = bool;
    const EXPECTING: &'static str = "true or false";

    fn from_bool(b: bool) -> Result<bool, String> {
        Ok(b)
    }
}

/// A whole number above 0.
pub(super) enum Count {}

impl Kind for Count {
    type Out = usize;
    const EXPECTING: &'static str = "a whole number";

    fn from_int(n: i64) -> Result<usize, String> {
        match usize::try_from(n) {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("`{n}` is not a whole number above 0")),
        }
    }
}

/// A size string, or a whole number of bytes.
pub(super) enum Size {}

impl Kind for Size {
    type Out = u64;
    const EXPECTING: &'static str = "a size like \"128MiB\"";

    fn from_str(text: &str) -> Result<u64, String> {
        config::parse_size(text)
    }

    fn from_int(n: i64) -> Result<u64, String> {
        u64::try_from(n).map_err(|_| format!("`{n}` is not a size"))
    }
}

pub(super) enum Time {}

impl Kind for Time {
    type Out = Duration;
    const EXPECTING: &'static str = "a duration like \"100ms\"";

    fn from_str(text: &str) -> Result<Duration, String> {
        humantime::parse_duration(text)
            .map_err(|err| format!("`{text}` is not a duration like 30s or 100ms ({err})"))
    }

    fn from_int(n: i64) -> Result<Duration, String> {
        Err(format!(
            "`{n}` has no unit; write a duration like \"{n}s\" or \"{n}ms\""
        ))
    }
}

pub(super) enum BusyPoll {}

impl Kind for BusyPoll {
    type Out = Duration;
    const EXPECTING: &'static str = "a string";

    fn from_str(text: &str) -> Result<Duration, String> {
        config::parse_busy_poll(text)
    }
}

pub(super) enum SchedSlice {}

impl Kind for SchedSlice {
    type Out = Duration;
    const EXPECTING: &'static str = "a string";

    fn from_str(text: &str) -> Result<Duration, String> {
        config::parse_sched_slice(text)
    }
}

pub(super) enum Address {}

impl Kind for Address {
    type Out = SocketAddr;
    const EXPECTING: &'static str = "a string";

    fn from_str(text: &str) -> Result<SocketAddr, String> {
        text.parse()
            .map_err(|_| format!("`{text}` is not an address like 127.0.0.1:8012"))
    }
}

/// The file holding the admin API's token; the token itself never goes in
/// the manifest, which is often shared and checked in.
pub(super) enum AdminTokenPath {}

impl Kind for AdminTokenPath {
    type Out = String;
    const EXPECTING: &'static str = "a string";

    fn from_str(path: &str) -> Result<String, String> {
        if path.is_empty() {
            return Err("the path is empty".into());
        }
        Ok(path.to_string())
    }
}

/// An address or `off`.
pub(super) enum Admin {}

impl Kind for Admin {
    type Out = Option<SocketAddr>;
    const EXPECTING: &'static str = "a string";

    fn from_str(text: &str) -> Result<Option<SocketAddr>, String> {
        config::parse_admin(text)
    }
}

/// The health listener's address, or `off`.
pub(super) enum HealthAddress {}

impl Kind for HealthAddress {
    type Out = Option<SocketAddr>;
    const EXPECTING: &'static str = "a string";

    fn from_str(text: &str) -> Result<Option<SocketAddr>, String> {
        config::parse_health(text)
    }
}

pub(super) enum Mode {}

impl Kind for Mode {
    type Out = Isolation;
    const EXPECTING: &'static str = "a string";

    /// The command line's names for the modes, so the two never differ.
    fn from_str(text: &str) -> Result<Isolation, String> {
        use clap::ValueEnum;

        Isolation::from_str(text, false).map_err(|_| {
            let names: Vec<String> = Isolation::value_variants()
                .iter()
                .filter_map(|v| v.to_possible_value())
                .map(|v| v.get_name().to_string())
                .collect();
            format!(
                "`{text}` is not an isolation mode (expected {})",
                names.join(" or ")
            )
        })
    }
}

/// An outbound rule, in the grammar of `--allow-outbound`.
pub(super) enum Rule {}

impl Kind for Rule {
    type Out = AllowRule;
    const EXPECTING: &'static str = "a string";

    fn from_str(text: &str) -> Result<AllowRule, String> {
        text.parse()
    }
}

/// A module name: what logs, metrics and the admin API call it.
pub(super) enum Name {}

impl Kind for Name {
    type Out = String;
    const EXPECTING: &'static str = "a string";

    fn from_str(name: &str) -> Result<String, String> {
        let valid = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!(
                "`{name}` is not a module name: use a-z, 0-9, `_` and `-`"
            ));
        }
        Ok(name.to_string())
    }
}

/// A mount prefix. Prefixes are compared with request targets as sent,
/// which are ASCII with no query or fragment in the path.
pub(super) enum Prefix {}

impl Kind for Prefix {
    type Out = String;
    const EXPECTING: &'static str = "a string";

    fn from_str(prefix: &str) -> Result<String, String> {
        if !prefix.starts_with('/') {
            return Err(format!("`{prefix}` does not start with `/`"));
        }
        if let Some(c) = prefix
            .chars()
            .find(|&c| !c.is_ascii_graphic() || c == '?' || c == '#')
        {
            return Err(format!(
                "`{prefix}` contains {c:?}; prefixes are ASCII paths without spaces, `?` or `#` \
                 (percent-encode other characters)"
            ));
        }
        // Requests are matched as sent, segment by segment: a prefix that
        // a client would normalise away could never match, or would match
        // only requests that dodge normalisation.
        if prefix.len() > 1 && prefix.ends_with('/') {
            let trimmed = prefix.trim_end_matches('/');
            return Err(format!(
                "`{prefix}` ends with `/`; write `{}`, which serves `{}` and everything below it",
                if trimmed.is_empty() { "/" } else { trimmed },
                if trimmed.is_empty() { "/" } else { trimmed },
            ));
        }
        for segment in prefix.split('/').skip(1) {
            let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
            if prefix != "/" && segment.is_empty() {
                return Err(format!("`{prefix}` has an empty segment (`//`)"));
            }
            if decoded == "." || decoded == ".." {
                return Err(format!(
                    "`{prefix}` has a `{segment}` segment; write the path it stands for"
                ));
            }
        }
        Ok(prefix.to_string())
    }
}

/// The module's wasm file, as written.
pub(super) enum WasmPath {}

impl Kind for WasmPath {
    type Out = String;
    const EXPECTING: &'static str = "a string";

    fn from_str(path: &str) -> Result<String, String> {
        if path.is_empty() {
            return Err("the path is empty".into());
        }
        Ok(path.to_string())
    }
}

/// A store name, as modules pass it to `open`.
pub(super) enum StoreName {}

impl Kind for StoreName {
    type Out = String;
    const EXPECTING: &'static str = "a string";

    fn from_str(name: &str) -> Result<String, String> {
        crate::kv::config::check_name(name)?;
        Ok(name.to_string())
    }
}

/// Which backend a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Backend {
    Memory,
    File,
    Redis,
}

pub(super) enum BackendKind {}

impl Kind for BackendKind {
    type Out = Backend;
    const EXPECTING: &'static str = "a string";

    fn from_str(text: &str) -> Result<Backend, String> {
        match text {
            "memory" => Ok(Backend::Memory),
            "file" => Ok(Backend::File),
            "redis" => Ok(Backend::Redis),
            _ => Err(format!(
                "`{text}` is not a store backend (expected memory, file or redis)"
            )),
        }
    }
}

/// A Redis server's URL. It may hold a password, so errors never repeat it.
pub(super) enum RedisUrl {}

impl Kind for RedisUrl {
    type Out = String;
    const EXPECTING: &'static str = "a string";

    fn from_str(text: &str) -> Result<String, String> {
        crate::kv::config::check_redis_url(text)?;
        Ok(text.to_string())
    }
}

/// The name of an environment variable of the server's.
pub(super) enum EnvName {}

impl Kind for EnvName {
    type Out = String;
    const EXPECTING: &'static str = "a string";

    fn from_str(name: &str) -> Result<String, String> {
        let valid = name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !valid {
            return Err(format!(
                "`{name}` is not an environment variable name: use A-Z, a-z, 0-9 and `_`, \
                 not starting with a digit"
            ));
        }
        Ok(name.to_string())
    }
}
