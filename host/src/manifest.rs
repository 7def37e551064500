//! The deployment manifest, `snow.toml`: server settings plus the route
//! modules to serve, each mounted under its own path prefix.
//!
//! ```toml
//! listen = "127.0.0.1:8012"
//! admin = "off"
//!
//! [limits]
//! max_body = "10MiB"
//! request_timeout = "30s"
//!
//! [[module]]
//! name = "hello"
//! prefix = "/"
//! wasm = "hello.wasm"
//! max_call_time = "100ms"
//! allow_outbound = ["https://api.example.com"]
//! [module.env]
//! GREETING = "hello"
//! ```
//!
//! Settings left out stay `None` so that command-line flags and the
//! defaults in [`crate::config`] can fill them in; [`Manifest::apply_to`]
//! and the `*_or_default` accessors of [`ModuleSpec`] do that.
//!
//! Mistakes are reported as `FILE:LINE:COLUMN: message`, with the key named
//! as a dotted path such as `module[1].max_call_time`, where module indices
//! count from 0 in file order. One mistake is reported at a time: the one
//! nearest the top of the file, whatever order the checks run in.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::{Spanned, Value};

use crate::config::{self, Isolation, ServeConfig};

/// A parsed and validated `snow.toml`.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// Where the manifest was read from, as given.
    pub path: PathBuf,
    pub listen: Option<SocketAddr>,
    pub workers: Option<usize>,
    pub busy_poll: Option<Duration>,
    /// `Some(None)`: the admin API was turned `off`.
    pub admin: Option<Option<SocketAddr>>,
    pub limits: ServerLimits,
    /// In file order; at least one.
    pub modules: Vec<ModuleSpec>,
}

/// Server-wide limits from `[limits]`, each mirroring a [`ServeConfig`] field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_body: Option<u64>,
    pub header_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub request_timeout: Option<Duration>,
    pub grace: Option<Duration>,
    pub max_parked: Option<usize>,
    pub max_connections: Option<usize>,
}

/// One `[[module]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleSpec {
    pub name: String,
    pub prefix: String,
    /// Relative paths are resolved against the manifest's directory.
    pub wasm: PathBuf,
    pub isolation: Isolation,
    pub max_memory: Option<u64>,
    pub max_call_time: Option<Duration>,
    pub max_stack: Option<u64>,
    /// Reload the module when its file changes.
    pub watch: bool,
    pub allow_outbound: Vec<OutboundRule>,
    /// Sorted by name.
    pub env: Vec<(String, String)>,
}

/// An origin a module may connect to: `scheme://host[:port]`, where the host
/// may start with `*.` to cover every subdomain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OutboundRule {
    /// Lowercase.
    pub scheme: String,
    /// Lowercase; an IPv6 address keeps its brackets.
    pub host: String,
    pub port: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{}: cannot read the manifest", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a value where the manifest expects a table or an array
    /// (or the other way round).
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "{}:{line}:{column}: unknown key `{key}` in {table} (expected one of {})",
        path.display(),
        expected.join(", ")
    )]
    UnknownKey {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        /// `the top-level table`, `[limits]` or `[[module]]`.
        table: String,
        expected: Vec<String>,
    },
    /// A value of the wrong type or form; `key` is its dotted path.
    #[error("{}:{line}:{column}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
    },
    /// A `[[module]]` without one of its required keys; the position is the
    /// table's header.
    #[error(
        "{}:{line}:{column}: {key} is missing (every [[module]] needs name, prefix and wasm)",
        path.display()
    )]
    Missing {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
    },
    /// A module name or prefix used twice; the position is the second use.
    #[error(
        "{}:{line}:{column}: {key}: `{value}` is already used at line {first_line}",
        path.display()
    )]
    Duplicate {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        value: String,
        first_line: usize,
    },
    #[error("{}: no [[module]] table; at least one module is required", path.display())]
    NoModules { path: PathBuf },
}

impl ManifestError {
    /// The 1-based line the error points at, when it points at one.
    pub fn line(&self) -> Option<usize> {
        match self {
            Self::Syntax { line, .. }
            | Self::UnknownKey { line, .. }
            | Self::Invalid { line, .. }
            | Self::Missing { line, .. }
            | Self::Duplicate { line, .. } => Some(*line),
            Self::Read { .. } | Self::NoModules { .. } => None,
        }
    }
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses `text` as if read from `path`, which names the file in errors
    /// and anchors relative `wasm` paths.
    pub fn parse(text: &str, path: &Path) -> Result<Manifest, ManifestError> {
        let mut check = Checker {
            text,
            path,
            first: None,
        };
        let raw: RawManifest = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(err) => return Err(check.toml_error(&err)),
        };
        let manifest = check.manifest(raw);
        match check.first {
            Some((_, err)) => Err(err),
            None => Ok(manifest),
        }
    }

    /// Overlays the server settings the manifest sets on `config`; those it
    /// leaves out keep their value.
    pub fn apply_to(&self, config: &mut ServeConfig) {
        if let Some(listen) = self.listen {
            config.listen = listen;
        }
        if let Some(workers) = self.workers {
            config.workers = workers;
        }
        if let Some(busy_poll) = self.busy_poll {
            config.busy_poll = busy_poll;
        }
        if let Some(admin) = self.admin {
            config.admin = admin;
        }
        let limits = &self.limits;
        if let Some(max_body) = limits.max_body {
            config.http.max_body = max_body;
        }
        if let Some(timeout) = limits.header_timeout {
            config.header_timeout = timeout;
        }
        if let Some(timeout) = limits.idle_timeout {
            config.idle_timeout = timeout;
        }
        if let Some(timeout) = limits.request_timeout {
            config.request_timeout = timeout;
        }
        if let Some(grace) = limits.grace {
            config.grace = grace;
        }
        if let Some(max_parked) = limits.max_parked {
            config.max_parked = max_parked;
        }
        if let Some(max_connections) = limits.max_connections {
            config.max_connections = max_connections;
        }
    }
}

impl ModuleSpec {
    pub fn max_memory_or_default(&self) -> usize {
        self.max_memory.map_or(config::DEFAULT_MAX_MEMORY, saturate)
    }

    pub fn max_call_time_or_default(&self) -> Duration {
        self.max_call_time.unwrap_or(config::DEFAULT_MAX_CALL_TIME)
    }

    pub fn max_stack_or_default(&self) -> usize {
        self.max_stack.map_or(config::DEFAULT_MAX_STACK, saturate)
    }
}

fn saturate(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

/// Sizes like `10MiB`, `512KiB`, `1GB` or plain bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 10MiB"))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1_000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        _ if unit.starts_with(['.', ',']) => {
            return Err(format!(
                "`{text}` is not a size like 10MiB (use a whole number of a smaller unit)"
            ))
        }
        _ => {
            return Err(format!(
                "`{text}` is not a size like 10MiB (unknown unit `{}`; use KiB, MiB or GiB)",
                unit.trim()
            ))
        }
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// A busy-poll budget: a duration up to [`config::MAX_BUSY_POLL`].
pub fn parse_busy_poll(text: &str) -> Result<Duration, String> {
    let budget = humantime::parse_duration(text)
        .map_err(|err| format!("`{text}` is not a duration like 15us ({err})"))?;
    if budget > config::MAX_BUSY_POLL {
        return Err(format!(
            "`{text}` is longer than {:?}, past which polling only burns CPU",
            config::MAX_BUSY_POLL
        ));
    }
    Ok(budget)
}

impl fmt::Display for OutboundRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl FromStr for OutboundRule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let shape = || format!("`{text}` is not an origin like https://api.example.com[:port]");
        let (scheme, rest) = text.split_once("://").ok_or_else(shape)?;
        let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
        if !scheme_ok {
            return Err(shape());
        }
        // A rule names an origin; a path or credentials would suggest a
        // finer-grained match than the rule gives.
        if rest.contains(['/', '?', '#']) {
            return Err(format!(
                "`{text}` has a path; rules are scheme://host[:port]"
            ));
        }
        if rest.contains('@') {
            return Err(format!(
                "`{text}` has credentials; rules are scheme://host[:port]"
            ));
        }
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (address, after) = bracketed.split_once(']').ok_or_else(shape)?;
            if address.parse::<Ipv6Addr>().is_err() {
                return Err(format!("`{text}`: `[{address}]` is not an IPv6 address"));
            }
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or_else(shape)?),
            };
            (format!("[{}]", address.to_ascii_lowercase()), port)
        } else {
            let (host, port) = match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            };
            check_host(host).map_err(|why| format!("`{text}`: {why}"))?;
            (host.to_ascii_lowercase(), port)
        };
        let port = match port {
            None => None,
            Some(digits) => match digits.parse::<u16>() {
                Ok(port) if port > 0 && digits.bytes().all(|b| b.is_ascii_digit()) => Some(port),
                _ => return Err(format!("`{text}`: `{digits}` is not a port (1-65535)")),
            },
        };
        Ok(OutboundRule {
            scheme: scheme.to_ascii_lowercase(),
            host,
            port,
        })
    }
}

/// A DNS name, optionally starting with `*.`, or an IPv4 address.
fn check_host(host: &str) -> Result<(), String> {
    let (wildcard, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    if name.is_empty() {
        return Err("the host is empty".into());
    }
    if name.contains('*') {
        return Err(format!(
            "`{host}`: `*` may only start the host, as in *.example.com"
        ));
    }
    if name.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        if wildcard {
            return Err(format!("`{host}`: an IP address cannot have `*.`"));
        }
        return match name.parse::<Ipv4Addr>() {
            Ok(_) => Ok(()),
            Err(_) => Err(format!("`{host}` is not an IPv4 address")),
        };
    }
    if name.len() > 253 {
        return Err(format!("`{host}` is longer than a host name can be"));
    }
    for label in name.split('.') {
        // Underscores are not in the host name grammar, but internal service
        // names (containers, compose files) use them and resolve.
        let valid = !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(format!("`{host}` is not a host name"));
        }
    }
    Ok(())
}

// The document as serde reads it. Tables are structs so that
// `deny_unknown_fields` catches misspelt keys; values are kept as spanned TOML
// values and checked by hand, so that every bad value is reported with its
// key path and line.

type RawValue = Option<Spanned<Value>>;

const TOP_KEYS: &[&str] = &[
    "listen",
    "workers",
    "busy_poll",
    "admin",
    "limits",
    "module",
];
const LIMITS_KEYS: &[&str] = &[
    "max_body",
    "header_timeout",
    "idle_timeout",
    "request_timeout",
    "grace",
    "max_parked",
    "max_connections",
];
const MODULE_KEYS: &[&str] = &[
    "name",
    "prefix",
    "wasm",
    "isolation",
    "max_memory",
    "max_call_time",
    "max_stack",
    "watch",
    "allow_outbound",
    "env",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    listen: RawValue,
    workers: RawValue,
    busy_poll: RawValue,
    admin: RawValue,
    limits: Option<RawLimits>,
    module: Option<Spanned<SpannedSeq<RawModule>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [limits] table")]
struct RawLimits {
    max_body: RawValue,
    header_timeout: RawValue,
    idle_timeout: RawValue,
    request_timeout: RawValue,
    grace: RawValue,
    max_parked: RawValue,
    max_connections: RawValue,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[module]] table")]
struct RawModule {
    name: RawValue,
    prefix: RawValue,
    wasm: RawValue,
    isolation: RawValue,
    max_memory: RawValue,
    max_call_time: RawValue,
    max_stack: RawValue,
    watch: RawValue,
    allow_outbound: Option<Spanned<SpannedSeq<Value>>>,
    env: Option<RawEnv>,
}

/// Names the array a type comes in, for type errors.
trait ArrayOf {
    const EXPECTING: &'static str;
}

impl ArrayOf for RawModule {
    const EXPECTING: &'static str = "an array of [[module]] tables";
}

impl ArrayOf for Value {
    const EXPECTING: &'static str = "an array of strings";
}

/// An array whose elements keep their own spans.
struct SpannedSeq<T>(Vec<Spanned<T>>);

impl<'de, T: Deserialize<'de> + ArrayOf> Deserialize<'de> for SpannedSeq<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SeqVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de> + ArrayOf> Visitor<'de> for SeqVisitor<T> {
            type Value = SpannedSeq<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(T::EXPECTING)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(SpannedSeq(items))
            }
        }

        deserializer.deserialize_seq(SeqVisitor(PhantomData))
    }
}

/// `[module.env]`, keys keeping their spans so bad names can be pointed at.
struct RawEnv(Vec<(Spanned<String>, Spanned<Value>)>);

impl<'de> Deserialize<'de> for RawEnv {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EnvVisitor;

        impl<'de> Visitor<'de> for EnvVisitor {
            type Value = RawEnv;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a [module.env] table of strings")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = map.next_entry()? {
                    entries.push(entry);
                }
                Ok(RawEnv(entries))
            }
        }

        deserializer.deserialize_map(EnvVisitor)
    }
}

/// Validates the raw document, keeping the error that comes first in the
/// file.
struct Checker<'a> {
    text: &'a str,
    path: &'a Path,
    first: Option<(usize, ManifestError)>,
}

impl Checker<'_> {
    /// 1-based line and column (in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line = before.matches('\n').count() + 1;
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    fn record(&mut self, offset: usize, err: ManifestError) {
        if self.first.as_ref().is_none_or(|(first, _)| offset < *first) {
            self.first = Some((offset, err));
        }
    }

    fn invalid(&mut self, key: &str, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = self.position(span.start);
        let err = ManifestError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        };
        self.record(span.start, err);
    }

    fn toml_error(&self, err: &toml::de::Error) -> ManifestError {
        let (line, column) = self.position(err.span().map_or(0, |span| span.start));
        let path = self.path.to_path_buf();
        // toml hands a date or time to serde as a table with one private
        // key, so one where a table belongs reads as that key's error.
        if err.message().contains("$__toml_private_datetime") {
            return ManifestError::Syntax {
                path,
                line,
                column,
                message: "a date or time is not valid here".into(),
            };
        }
        match unknown_key(err.message()) {
            Some((key, table, expected)) => ManifestError::UnknownKey {
                path,
                line,
                column,
                key,
                table: table.to_string(),
                expected,
            },
            None => ManifestError::Syntax {
                path,
                line,
                column,
                message: err.message().to_string(),
            },
        }
    }

    fn manifest(&mut self, raw: RawManifest) -> Manifest {
        let listen = raw.listen.and_then(|v| self.address("listen", v));
        let workers = raw.workers.and_then(|v| self.count("workers", v));
        let busy_poll = raw.busy_poll.and_then(|v| self.busy_poll(v));
        let admin = raw.admin.and_then(|v| self.admin(v));
        let limits = raw.limits.map(|l| self.limits(l)).unwrap_or_default();
        let modules = match raw.module {
            None => {
                self.record(
                    usize::MAX,
                    ManifestError::NoModules {
                        path: self.path.to_path_buf(),
                    },
                );
                Vec::new()
            }
            Some(modules) => {
                let span = modules.span();
                let SpannedSeq(modules) = modules.into_inner();
                if modules.is_empty() {
                    self.invalid("module", span, "at least one [[module]] is required");
                }
                self.modules(modules)
            }
        };
        Manifest {
            path: self.path.to_path_buf(),
            listen,
            workers,
            busy_poll,
            admin,
            limits,
            modules,
        }
    }

    fn limits(&mut self, raw: RawLimits) -> ServerLimits {
        ServerLimits {
            max_body: raw.max_body.and_then(|v| self.size("limits.max_body", v)),
            header_timeout: raw
                .header_timeout
                .and_then(|v| self.duration("limits.header_timeout", v)),
            idle_timeout: raw
                .idle_timeout
                .and_then(|v| self.duration("limits.idle_timeout", v)),
            request_timeout: raw
                .request_timeout
                .and_then(|v| self.duration("limits.request_timeout", v)),
            grace: raw.grace.and_then(|v| self.duration("limits.grace", v)),
            max_parked: raw
                .max_parked
                .and_then(|v| self.count("limits.max_parked", v)),
            max_connections: raw
                .max_connections
                .and_then(|v| self.count("limits.max_connections", v)),
        }
    }

    fn modules(&mut self, raw: Vec<Spanned<RawModule>>) -> Vec<ModuleSpec> {
        let mut modules = Vec::with_capacity(raw.len());
        // (value, offset of its first use) for the duplicate checks.
        let mut names: Vec<(String, usize)> = Vec::new();
        let mut prefixes: Vec<(String, usize)> = Vec::new();
        for (index, module) in raw.into_iter().enumerate() {
            let header = module.span();
            let module = module.into_inner();
            let at = |key: &str| format!("module[{index}].{key}");

            let name = self.required(&at("name"), &header, module.name);
            let name = name.and_then(|v| {
                let span = v.span();
                let name = self.string(&at("name"), v)?;
                if !valid_name(&name) {
                    self.invalid(
                        &at("name"),
                        span,
                        format!("`{name}` is not a module name: use a-z, 0-9, `_` and `-`"),
                    );
                    return None;
                }
                self.unique(&at("name"), &mut names, &name, span.start);
                Some(name)
            });
            let prefix = self.required(&at("prefix"), &header, module.prefix);
            let prefix = prefix.and_then(|v| {
                let span = v.span();
                let prefix = self.string(&at("prefix"), v)?;
                if let Err(why) = check_prefix(&prefix) {
                    self.invalid(&at("prefix"), span, why);
                    return None;
                }
                self.unique(&at("prefix"), &mut prefixes, &prefix, span.start);
                Some(prefix)
            });
            let wasm = self.required(&at("wasm"), &header, module.wasm);
            let wasm = wasm.and_then(|v| {
                let span = v.span();
                let wasm = self.string(&at("wasm"), v)?;
                if wasm.is_empty() {
                    self.invalid(&at("wasm"), span, "the path is empty");
                    return None;
                }
                Some(self.resolve(Path::new(&wasm)))
            });
            let isolation = module
                .isolation
                .and_then(|v| self.isolation(&at("isolation"), v))
                .unwrap_or(Isolation::Instance);
            let max_memory = module
                .max_memory
                .and_then(|v| self.size(&at("max_memory"), v));
            let max_call_time = module
                .max_call_time
                .and_then(|v| self.duration(&at("max_call_time"), v));
            let max_stack = module
                .max_stack
                .and_then(|v| self.size(&at("max_stack"), v));
            let watch = module
                .watch
                .and_then(|v| self.boolean(&at("watch"), v))
                .unwrap_or(true);
            let allow_outbound = module
                .allow_outbound
                .map(|v| self.outbound(&at("allow_outbound"), v.into_inner()))
                .unwrap_or_default();
            let env = module
                .env
                .map(|v| self.env(&at("env"), v))
                .unwrap_or_default();

            // A missing or bad required key has been recorded, which makes
            // the whole parse fail; the module itself is not needed then.
            if let (Some(name), Some(prefix), Some(wasm)) = (name, prefix, wasm) {
                modules.push(ModuleSpec {
                    name,
                    prefix,
                    wasm,
                    isolation,
                    max_memory,
                    max_call_time,
                    max_stack,
                    watch,
                    allow_outbound,
                    env,
                });
            }
        }
        modules
    }

    fn required(
        &mut self,
        key: &str,
        header: &Range<usize>,
        value: RawValue,
    ) -> Option<Spanned<Value>> {
        if value.is_none() {
            let (line, column) = self.position(header.start);
            let err = ManifestError::Missing {
                path: self.path.to_path_buf(),
                line,
                column,
                key: key.to_string(),
            };
            self.record(header.start, err);
        }
        value
    }

    fn unique(&mut self, key: &str, seen: &mut Vec<(String, usize)>, value: &str, offset: usize) {
        match seen.iter().find(|(v, _)| v == value) {
            Some(&(_, first)) => {
                let (line, column) = self.position(offset);
                let err = ManifestError::Duplicate {
                    path: self.path.to_path_buf(),
                    line,
                    column,
                    key: key.to_string(),
                    value: value.to_string(),
                    first_line: self.position(first).0,
                };
                self.record(offset, err);
            }
            None => seen.push((value.to_string(), offset)),
        }
    }

    fn resolve(&self, wasm: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) => dir.join(wasm),
            None => wasm.to_path_buf(),
        }
    }

    fn string(&mut self, key: &str, value: Spanned<Value>) -> Option<String> {
        let span = value.span();
        match value.into_inner() {
            Value::String(s) => Some(s),
            other => {
                self.invalid(
                    key,
                    span,
                    format!("expected a string, found {}", kind(&other)),
                );
                None
            }
        }
    }

    fn boolean(&mut self, key: &str, value: Spanned<Value>) -> Option<bool> {
        let span = value.span();
        match value.into_inner() {
            Value::Boolean(b) => Some(b),
            other => {
                let found = kind(&other);
                self.invalid(key, span, format!("expected true or false, found {found}"));
                None
            }
        }
    }

    /// A positive whole number.
    fn count(&mut self, key: &str, value: Spanned<Value>) -> Option<usize> {
        let span = value.span();
        match value.into_inner() {
            Value::Integer(n) => match usize::try_from(n) {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    self.invalid(key, span, format!("`{n}` is not a whole number above 0"));
                    None
                }
            },
            other => {
                let found = kind(&other);
                self.invalid(key, span, format!("expected a whole number, found {found}"));
                None
            }
        }
    }

    /// A size string, or a whole number of bytes.
    fn size(&mut self, key: &str, value: Spanned<Value>) -> Option<u64> {
        let span = value.span();
        let parsed = match value.into_inner() {
            Value::String(s) => parse_size(&s),
            Value::Integer(n) => u64::try_from(n).map_err(|_| format!("`{n}` is not a size")),
            other => Err(format!(
                "expected a size like \"128MiB\", found {}",
                kind(&other)
            )),
        };
        parsed.map_err(|why| self.invalid(key, span, why)).ok()
    }

    fn duration(&mut self, key: &str, value: Spanned<Value>) -> Option<Duration> {
        let span = value.span();
        let parsed = match value.into_inner() {
            Value::String(s) => humantime::parse_duration(&s)
                .map_err(|err| format!("`{s}` is not a duration like 30s or 100ms ({err})")),
            Value::Integer(n) => Err(format!(
                "`{n}` has no unit; write a duration like \"{n}s\" or \"{n}ms\""
            )),
            other => Err(format!(
                "expected a duration like \"100ms\", found {}",
                kind(&other)
            )),
        };
        parsed.map_err(|why| self.invalid(key, span, why)).ok()
    }

    fn busy_poll(&mut self, value: Spanned<Value>) -> Option<Duration> {
        let span = value.span();
        let text = self.string("busy_poll", value)?;
        parse_busy_poll(&text)
            .map_err(|why| self.invalid("busy_poll", span, why))
            .ok()
    }

    fn address(&mut self, key: &str, value: Spanned<Value>) -> Option<SocketAddr> {
        let span = value.span();
        let text = self.string(key, value)?;
        match text.parse() {
            Ok(address) => Some(address),
            Err(_) => {
                let why = format!("`{text}` is not an address like 127.0.0.1:8012");
                self.invalid(key, span, why);
                None
            }
        }
    }

    fn admin(&mut self, value: Spanned<Value>) -> Option<Option<SocketAddr>> {
        let span = value.span();
        let text = self.string("admin", value)?;
        if text.eq_ignore_ascii_case("off") {
            return Some(None);
        }
        match text.parse() {
            Ok(address) => Some(Some(address)),
            Err(_) => {
                let why = format!("`{text}` is not an address like 127.0.0.1:8013, or `off`");
                self.invalid("admin", span, why);
                None
            }
        }
    }

    fn isolation(&mut self, key: &str, value: Spanned<Value>) -> Option<Isolation> {
        use clap::ValueEnum;

        let span = value.span();
        let text = self.string(key, value)?;
        // The command line's names for the modes, so the two never differ.
        match Isolation::from_str(&text, false) {
            Ok(isolation) => Some(isolation),
            Err(_) => {
                let names: Vec<String> = Isolation::value_variants()
                    .iter()
                    .filter_map(|v| v.to_possible_value())
                    .map(|v| v.get_name().to_string())
                    .collect();
                let why = format!(
                    "`{text}` is not an isolation mode (expected {})",
                    names.join(" or ")
                );
                self.invalid(key, span, why);
                None
            }
        }
    }

    fn outbound(&mut self, key: &str, rules: SpannedSeq<Value>) -> Vec<OutboundRule> {
        let mut parsed = Vec::with_capacity(rules.0.len());
        for (i, rule) in rules.0.into_iter().enumerate() {
            let key = format!("{key}[{i}]");
            let span = rule.span();
            let Some(text) = self.string(&key, rule) else {
                continue;
            };
            match text.parse() {
                Ok(rule) => parsed.push(rule),
                Err(why) => self.invalid(&key, span, why),
            }
        }
        parsed
    }

    fn env(&mut self, key: &str, env: RawEnv) -> Vec<(String, String)> {
        let mut vars = Vec::with_capacity(env.0.len());
        for (name, value) in env.0 {
            let name_span = name.span();
            let name = name.into_inner();
            let key = format!("{key}.{name}");
            if !valid_env_name(&name) {
                let why = format!(
                    "`{name}` is not an environment variable name: use A-Z, a-z, 0-9 and `_`, \
                     not starting with a digit"
                );
                self.invalid(&key, name_span, why);
                continue;
            }
            let span = value.span();
            match value.into_inner() {
                Value::String(value) => vars.push((name, value)),
                other => {
                    // Environment variables are strings; quoting keeps the
                    // value exactly as written rather than as TOML prints it.
                    let why = format!("expected a string, found {}; quote it", kind(&other));
                    self.invalid(&key, span, why);
                }
            }
        }
        vars.sort();
        vars
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date or time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

fn valid_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Prefixes are compared with request targets as sent, which are ASCII
/// with no query or fragment in the path.
fn check_prefix(prefix: &str) -> Result<(), String> {
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
    Ok(())
}

/// Recognises serde's unknown-field message (``unknown field `k`, expected
/// one of `a`, `b` ``) and names the table from the keys it lists.
fn unknown_key(message: &str) -> Option<(String, &'static str, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, expected) = rest.split_once('`')?;
    // The listed keys are the odd pieces between backticks.
    let expected: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let table = [
        ("the top-level table", TOP_KEYS),
        ("[limits]", LIMITS_KEYS),
        ("[[module]]", MODULE_KEYS),
    ]
    .into_iter()
    .find(|(_, keys)| keys.iter().eq(expected.iter()))?
    .0;
    Some((key.to_string(), table, expected))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"listen = "0.0.0.0:9000"
workers = 4
busy_poll = "40us"
admin = "127.0.0.1:9001"

[limits]
max_body = "1MiB"
header_timeout = "5s"
idle_timeout = "1m"
request_timeout = "10s"
grace = "2s"
max_parked = 100
max_connections = 5000

[[module]]
name = "hello"
prefix = "/"
wasm = "hello.wasm"
isolation = "request"
max_memory = "64MiB"
max_call_time = "250ms"
max_stack = "512KiB"
watch = false
allow_outbound = [
    "https://api.example.com",
    "http://*.internal:8080",
    "HTTP://[::1]:3000",
]

[module.env]
ZED = "last"
GREETING = "hello"
_private = ""

[[module]]
name = "api-v2"
prefix = "/api/v2"
wasm = "/srv/modules/api.wasm"
max_memory = 1048576
"#;

    fn parse(text: &str) -> Result<Manifest, ManifestError> {
        Manifest::parse(text, Path::new("deploy/snow.toml"))
    }

    fn error(text: &str) -> ManifestError {
        match parse(text) {
            Ok(manifest) => panic!("expected an error, parsed {manifest:?}"),
            Err(err) => err,
        }
    }

    /// A minimal manifest with `extra` added to its one module.
    fn module_with(extra: &str) -> String {
        format!("[[module]]\nname = \"m\"\nprefix = \"/\"\nwasm = \"m.wasm\"\n{extra}")
    }

    #[test]
    fn full_manifest_reads_every_key() {
        let manifest = parse(FULL).expect("valid manifest");
        assert_eq!(manifest.path, Path::new("deploy/snow.toml"));
        assert_eq!(manifest.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(manifest.workers, Some(4));
        assert_eq!(manifest.busy_poll, Some(Duration::from_micros(40)));
        assert_eq!(
            manifest.admin,
            Some(Some("127.0.0.1:9001".parse().unwrap()))
        );
        assert_eq!(
            manifest.limits,
            ServerLimits {
                max_body: Some(1 << 20),
                header_timeout: Some(Duration::from_secs(5)),
                idle_timeout: Some(Duration::from_secs(60)),
                request_timeout: Some(Duration::from_secs(10)),
                grace: Some(Duration::from_secs(2)),
                max_parked: Some(100),
                max_connections: Some(5000),
            }
        );
        let [hello, api] = &manifest.modules[..] else {
            panic!("expected two modules, got {:?}", manifest.modules);
        };
        assert_eq!(
            *hello,
            ModuleSpec {
                name: "hello".into(),
                prefix: "/".into(),
                wasm: PathBuf::from("deploy/hello.wasm"),
                isolation: Isolation::Request,
                max_memory: Some(64 << 20),
                max_call_time: Some(Duration::from_millis(250)),
                max_stack: Some(512 << 10),
                watch: false,
                allow_outbound: vec![
                    OutboundRule {
                        scheme: "https".into(),
                        host: "api.example.com".into(),
                        port: None,
                    },
                    OutboundRule {
                        scheme: "http".into(),
                        host: "*.internal".into(),
                        port: Some(8080),
                    },
                    OutboundRule {
                        scheme: "http".into(),
                        host: "[::1]".into(),
                        port: Some(3000),
                    },
                ],
                env: vec![
                    ("GREETING".into(), "hello".into()),
                    ("ZED".into(), "last".into()),
                    ("_private".into(), String::new()),
                ],
            }
        );
        let rules: Vec<String> = hello.allow_outbound.iter().map(|r| r.to_string()).collect();
        assert_eq!(
            rules,
            [
                "https://api.example.com",
                "http://*.internal:8080",
                "http://[::1]:3000"
            ]
        );
        assert_eq!(api.name, "api-v2");
        assert_eq!(api.prefix, "/api/v2");
        assert_eq!(api.wasm, PathBuf::from("/srv/modules/api.wasm"));
        assert_eq!(api.max_memory, Some(1 << 20));
        assert_eq!(api.isolation, Isolation::Instance);
        assert!(api.watch);
    }

    #[test]
    fn minimal_manifest_leaves_settings_unset() {
        let text = "[[module]]\nname = \"hello\"\nprefix = \"/\"\nwasm = \"hello.wasm\"\n";
        let manifest = Manifest::parse(text, Path::new("snow.toml")).expect("valid manifest");
        assert_eq!(
            manifest,
            Manifest {
                path: PathBuf::from("snow.toml"),
                listen: None,
                workers: None,
                busy_poll: None,
                admin: None,
                limits: ServerLimits::default(),
                modules: vec![ModuleSpec {
                    name: "hello".into(),
                    prefix: "/".into(),
                    wasm: PathBuf::from("hello.wasm"),
                    isolation: Isolation::Instance,
                    max_memory: None,
                    max_call_time: None,
                    max_stack: None,
                    watch: true,
                    allow_outbound: Vec::new(),
                    env: Vec::new(),
                }],
            }
        );
        let module = &manifest.modules[0];
        assert_eq!(module.max_memory_or_default(), config::DEFAULT_MAX_MEMORY);
        assert_eq!(
            module.max_call_time_or_default(),
            config::DEFAULT_MAX_CALL_TIME
        );
        assert_eq!(module.max_stack_or_default(), config::DEFAULT_MAX_STACK);
    }

    #[test]
    fn apply_to_overlays_only_what_is_set() {
        let manifest = parse(FULL).expect("valid manifest");
        let mut config = ServeConfig::default();
        manifest.apply_to(&mut config);
        assert_eq!(config.listen, "0.0.0.0:9000".parse().unwrap());
        assert_eq!(config.workers, 4);
        assert_eq!(config.admin, Some("127.0.0.1:9001".parse().unwrap()));
        assert_eq!(config.http.max_body, 1 << 20);
        assert_eq!(config.header_timeout, Duration::from_secs(5));
        assert_eq!(config.idle_timeout, Duration::from_secs(60));
        assert_eq!(config.request_timeout, Duration::from_secs(10));
        assert_eq!(config.grace, Duration::from_secs(2));
        assert_eq!(config.max_parked, 100);
        assert_eq!(config.max_connections, 5000);

        let minimal = parse(&module_with("")).expect("valid manifest");
        let mut config = ServeConfig::default();
        minimal.apply_to(&mut config);
        let defaults = ServeConfig::default();
        assert_eq!(config.listen, defaults.listen);
        assert_eq!(config.admin, defaults.admin);
        assert_eq!(config.http.max_body, defaults.http.max_body);
        assert_eq!(config.request_timeout, config::DEFAULT_REQUEST_TIMEOUT);
        assert_eq!(config.max_connections, config::DEFAULT_MAX_CONNECTIONS);
    }

    #[test]
    fn admin_off_disables_the_admin_api() {
        let manifest = parse(&format!("admin = \"off\"\n{}", module_with(""))).expect("valid");
        assert_eq!(manifest.admin, Some(None));
        let mut config = ServeConfig {
            admin: Some(config::DEFAULT_ADMIN.parse().unwrap()),
            ..ServeConfig::default()
        };
        manifest.apply_to(&mut config);
        assert_eq!(config.admin, None);
    }

    #[test]
    fn unknown_keys_are_named_with_their_table_and_line() {
        let err = error("listen = \"127.0.0.1:1\"\nlisten_addr = \"x\"\n");
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:2:1: unknown key `listen_addr` in the top-level table \
             (expected one of listen, workers, busy_poll, admin, limits, module)"
        );

        let err = error(&format!("[limits]\nmax_bodyy = 1\n{}", module_with("")));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:2:1: unknown key `max_bodyy` in [limits] (expected one of \
             max_body, header_timeout, idle_timeout, request_timeout, grace, max_parked, \
             max_connections)"
        );

        let err = error(&module_with("\n\nprefixx = \"/a\"\n"));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:7:1: unknown key `prefixx` in [[module]] (expected one of name, \
             prefix, wasm, isolation, max_memory, max_call_time, max_stack, watch, \
             allow_outbound, env)"
        );
    }

    #[test]
    fn syntax_and_shape_errors_point_at_the_line() {
        let err = error("listen = \n");
        assert!(
            matches!(err, ManifestError::Syntax { line: 1, .. }),
            "{err}"
        );

        let err = error("workers = 1\nworkers = 2\n");
        assert!(
            matches!(err, ManifestError::Syntax { line: 2, .. }),
            "{err}"
        );

        let err = error("workers = 1\n\n[module]\nname = \"a\"\n");
        assert!(
            matches!(err, ManifestError::Syntax { line: 3, .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("an array of [[module]] tables"),
            "{err}"
        );

        let err = error("workers = 1\nlimits = 5\n");
        assert!(
            matches!(err, ManifestError::Syntax { line: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("a [limits] table"), "{err}");

        let err = error(&module_with("\nallow_outbound = \"https://a.example\"\n"));
        assert!(
            matches!(err, ManifestError::Syntax { line: 6, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("an array of strings"), "{err}");

        let err = error(&format!("limits = 1979-05-27\n{}", module_with("")));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:1:10: a date or time is not valid here"
        );

        let err = error(&module_with("env = 1979-05-27\n"));
        assert!(
            matches!(err, ManifestError::Syntax { line: 5, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .ends_with("a date or time is not valid here"),
            "{err}"
        );

        let err = error(&module_with("env = \"A=1\"\n"));
        assert!(
            matches!(err, ManifestError::Syntax { line: 5, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("[module.env]"), "{err}");
    }

    #[test]
    fn bad_sizes_name_the_key_and_value_line() {
        let err = error(&module_with("\n\n\n\n\n\n\nmax_memory = \"12 parsecs\"\n"));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:12:14: module[0].max_memory: `12 parsecs` is not a size like \
             10MiB (unknown unit `parsecs`; use KiB, MiB or GiB)"
        );

        let err = error(&module_with("max_stack = -1\n"));
        assert_eq!(err.line(), Some(5));
        assert!(err.to_string().contains("module[0].max_stack"), "{err}");

        let err = error(&module_with("max_stack = true\n"));
        assert!(
            err.to_string()
                .ends_with("module[0].max_stack: expected a size like \"128MiB\", found a boolean"),
            "{err}"
        );

        let err = error(&format!(
            "[limits]\nmax_body = \"lots\"\n{}",
            module_with("")
        ));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:2:12: limits.max_body: `lots` is not a size like 10MiB"
        );
    }

    #[test]
    fn bad_durations_name_the_key_and_value_line() {
        let second = "[[module]]\nname = \"b\"\nprefix = \"/b\"\nwasm = \"b.wasm\"\n\
                      max_call_time = \"fast\"\n";
        let err = error(&format!("{}{second}", module_with("")));
        assert_eq!(err.line(), Some(9));
        assert!(
            err.to_string().starts_with(
                "deploy/snow.toml:9:17: module[1].max_call_time: `fast` is not a duration"
            ),
            "{err}"
        );

        let err = error(&format!("[limits]\n\ngrace = 30\n{}", module_with("")));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:3:9: limits.grace: `30` has no unit; write a duration like \
             \"30s\" or \"30ms\""
        );

        for key in ["header_timeout", "idle_timeout", "request_timeout"] {
            let err = error(&format!("[limits]\n{key} = \"soon\"\n{}", module_with("")));
            assert_eq!(err.line(), Some(2), "{err}");
            assert!(err.to_string().contains(&format!("limits.{key}:")), "{err}");
        }

        let err = error(&format!("busy_poll = \"2ms\"\n{}", module_with("")));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:1:13: busy_poll: `2ms` is longer than 1ms, past which polling \
             only burns CPU"
        );
        let err = error(&format!("busy_poll = \"often\"\n{}", module_with("")));
        assert!(
            err.to_string()
                .starts_with("deploy/snow.toml:1:13: busy_poll: `often` is not a duration"),
            "{err}"
        );
        let manifest = parse(&format!("busy_poll = \"0s\"\n{}", module_with(""))).expect("valid");
        assert_eq!(manifest.busy_poll, Some(Duration::ZERO));
    }

    #[test]
    fn bad_addresses_and_counts_name_the_key() {
        let err = error(&format!("listen = \"localhost\"\n{}", module_with("")));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:1:10: listen: `localhost` is not an address like 127.0.0.1:8012"
        );

        let err = error(&format!("workers = 1\nadmin = \"on\"\n{}", module_with("")));
        assert_eq!(err.line(), Some(2));
        assert!(
            err.to_string().contains("admin: `on` is not an address"),
            "{err}"
        );

        let err = error(&format!("listen = 8012\n{}", module_with("")));
        assert!(
            err.to_string()
                .ends_with("listen: expected a string, found an integer"),
            "{err}"
        );

        let err = error(&format!("\nworkers = 0\n{}", module_with("")));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:2:11: workers: `0` is not a whole number above 0"
        );

        let err = error(&format!("workers = \"2\"\n{}", module_with("")));
        assert!(err.to_string().ends_with("found a string"), "{err}");

        let text = format!(
            "[limits]\nmax_parked = 1\nmax_connections = -3\n{}",
            module_with("")
        );
        let err = error(&text);
        assert_eq!(err.line(), Some(3));
        assert!(err.to_string().contains("limits.max_connections"), "{err}");
    }

    #[test]
    fn bad_isolation_and_watch_name_the_key() {
        let err = error(&module_with("isolation = \"process\"\n"));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:5:13: module[0].isolation: `process` is not an isolation mode \
             (expected instance or request)"
        );

        let err = error(&module_with("watch = \"yes\"\n"));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:5:9: module[0].watch: expected true or false, found a string"
        );
    }

    #[test]
    fn module_names_must_be_lowercase_words() {
        for bad in ["\"Hello\"", "\"\"", "\"a b\"", "\"a/b\"", "3"] {
            let text = format!("[[module]]\nprefix = \"/\"\nwasm = \"m.wasm\"\nname = {bad}\n");
            let err = error(&text);
            assert_eq!(err.line(), Some(4), "{err}");
            assert!(err.to_string().contains("module[0].name"), "{err}");
        }
        let err = error("[[module]]\nname = \"Hello\"\nprefix = \"/\"\nwasm = \"m.wasm\"\n");
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:2:8: module[0].name: `Hello` is not a module name: use a-z, 0-9, \
             `_` and `-`"
        );
        assert!(parse("[[module]]\nname = \"a_b-9\"\nprefix = \"/\"\nwasm = \"m\"\n").is_ok());
    }

    #[test]
    fn prefixes_must_be_paths() {
        for bad in [
            "\"api\"",
            "\"/a b\"",
            "\"/a?b\"",
            "\"/a#b\"",
            "\"/caf\u{e9}\"",
            "\"\"",
        ] {
            let text = format!("[[module]]\nname = \"m\"\nwasm = \"m.wasm\"\n\nprefix = {bad}\n");
            let err = error(&text);
            assert_eq!(err.line(), Some(5), "{err}");
            assert!(err.to_string().contains("module[0].prefix"), "{err}");
        }
        let err = error("[[module]]\nname = \"m\"\nprefix = \"api\"\nwasm = \"m.wasm\"\n");
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:3:10: module[0].prefix: `api` does not start with `/`"
        );
    }

    #[test]
    fn wasm_must_be_a_nonempty_string() {
        let err = error("[[module]]\nname = \"m\"\nprefix = \"/\"\nwasm = \"\"\n");
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:4:8: module[0].wasm: the path is empty"
        );
        let err = error("[[module]]\nname = \"m\"\nprefix = \"/\"\nwasm = [\"m.wasm\"]\n");
        assert_eq!(err.line(), Some(4));
    }

    #[test]
    fn required_keys_are_reported_at_the_module_header() {
        let text = format!(
            "{}\n[[module]]\nname = \"b\"\nwasm = \"b.wasm\"\n",
            module_with("")
        );
        let err = error(&text);
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:6:1: module[1].prefix is missing (every [[module]] needs name, \
             prefix and wasm)"
        );
        for key in ["name", "prefix", "wasm"] {
            let lines: String = ["name = \"m\"\n", "prefix = \"/\"\n", "wasm = \"m.wasm\"\n"]
                .iter()
                .filter(|line| !line.starts_with(key))
                .copied()
                .collect();
            let err = error(&format!("workers = 1\n[[module]]\n{lines}"));
            assert!(
                matches!(&err, ManifestError::Missing { line: 2, column: 1, key: k, .. }
                    if *k == format!("module[0].{key}")),
                "{err}"
            );
        }
    }

    #[test]
    fn at_least_one_module_is_required() {
        let err = error("listen = \"127.0.0.1:8012\"\n");
        assert!(matches!(err, ManifestError::NoModules { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml: no [[module]] table; at least one module is required"
        );
        assert_eq!(err.line(), None);

        let err = error("workers = 1\nmodule = []\n");
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:2:10: module: at least one [[module]] is required"
        );

        assert!(matches!(error(""), ManifestError::NoModules { .. }));
    }

    #[test]
    fn duplicate_names_and_prefixes_name_both_lines() {
        let text = "[[module]]\nname = \"a\"\nprefix = \"/a\"\nwasm = \"a.wasm\"\n\n\
                    [[module]]\nname = \"b\"\nprefix = \"/a\"\nwasm = \"b.wasm\"\n\n\
                    [[module]]\nname = \"a\"\nprefix = \"/c\"\nwasm = \"c.wasm\"\n";
        let err = error(text);
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:8:10: module[1].prefix: `/a` is already used at line 3"
        );

        let text = text.replacen(
            "prefix = \"/a\"\nwasm = \"b",
            "prefix = \"/b\"\nwasm = \"b",
            1,
        );
        let err = error(&text);
        assert!(
            matches!(
                &err,
                ManifestError::Duplicate { line: 12, column: 8, first_line: 2, key, value, .. }
                    if key == "module[2].name" && value == "a"
            ),
            "{err}"
        );
    }

    #[test]
    fn outbound_rules_are_validated_per_entry() {
        let err = error(&module_with(
            "allow_outbound = [\n  \"https://ok.example\",\n  \"ftp//nope\",\n]\n",
        ));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:7:3: module[0].allow_outbound[1]: `ftp//nope` is not an origin \
             like https://api.example.com[:port]"
        );

        let err = error(&module_with(
            "allow_outbound = [\"https://a.example\", 443]\n",
        ));
        assert_eq!(err.line(), Some(5));
        assert!(
            err.to_string()
                .contains("module[0].allow_outbound[1]: expected a string, found an integer"),
            "{err}"
        );
    }

    #[test]
    fn outbound_rule_syntax() {
        let ok = [
            ("https://api.example.com", "https://api.example.com"),
            (
                "HTTPS://API.Example.COM:8443",
                "https://api.example.com:8443",
            ),
            ("http://*.internal:8080", "http://*.internal:8080"),
            ("http://10.0.0.1", "http://10.0.0.1"),
            ("http://[2001:DB8::1]:80", "http://[2001:db8::1]:80"),
            ("http://my_service:9000", "http://my_service:9000"),
            ("ws+unix://sock", "ws+unix://sock"),
        ];
        for (text, shown) in ok {
            let rule: OutboundRule = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(rule.to_string(), shown);
        }
        let bad = [
            "api.example.com",
            "https://",
            "https://api.example.com/v1",
            "https://api.example.com/",
            "https://user@api.example.com",
            "https://api.example.com:0",
            "https://api.example.com:65536",
            "https://api.example.com:+80",
            "https://api.example.com:",
            "https://api.*.com",
            "https://*",
            "https://*.",
            "https://*.10.0.0.1",
            "https://300.1.1.1",
            "https://-a.example",
            "https://a..example",
            "https://[::g]",
            "https://[::1",
            "https://[::1]x",
            "1http://a.example",
            "ht tp://a.example",
        ];
        for text in bad {
            assert!(text.parse::<OutboundRule>().is_err(), "{text} was accepted");
        }
    }

    #[test]
    fn env_names_and_values_are_checked() {
        let err = error(&module_with(
            "[module.env]\nGOOD = \"x\"\n\"1BAD\" = \"y\"\n",
        ));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:7:1: module[0].env.1BAD: `1BAD` is not an environment variable \
             name: use A-Z, a-z, 0-9 and `_`, not starting with a digit"
        );

        let err = error(&module_with("[module.env]\n\"A-B\" = \"x\"\n"));
        assert_eq!(err.line(), Some(6));

        let err = error(&module_with("[module.env]\nPORT = 8080\n"));
        assert_eq!(
            err.to_string(),
            "deploy/snow.toml:6:8: module[0].env.PORT: expected a string, found an integer; \
             quote it"
        );

        let manifest = parse(&module_with("env = { B = \"2\", A = \"1\" }\n")).expect("valid");
        assert_eq!(
            manifest.modules[0].env,
            [
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "2".to_string())
            ]
        );
    }

    #[test]
    fn the_first_error_in_the_file_wins() {
        // `name` is checked before `max_stack`, but comes later in the file.
        let text = "[[module]]\nprefix = \"/\"\nwasm = \"m\"\nmax_stack = true\nname = \"BAD\"\n";
        assert_eq!(error(text).line(), Some(4));
        let text =
            "[[module]]\nname = \"BAD\"\nprefix = \"/\"\nwasm = \"m\"\n[module.env]\nX = 1\n";
        assert_eq!(error(text).line(), Some(2));
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let err = error(&module_with("[module.env]\nA = \"é\"\nB = 1\n"));
        assert_eq!(err.line(), Some(7));
        let text = format!("# héllo wörld\n{}", module_with("watch = \"é\" # ü\n"));
        match error(&text) {
            ManifestError::Invalid { line, column, .. } => assert_eq!((line, column), (6, 9)),
            err => panic!("unexpected {err}"),
        }
        let text = format!("# ü\n{}", module_with("[module.env]\n\"é\" = \"x\"\n"));
        match error(&text) {
            ManifestError::Invalid { line, column, .. } => assert_eq!((line, column), (7, 1)),
            err => panic!("unexpected {err}"),
        }
    }

    #[test]
    fn load_reads_the_file_and_reports_missing_ones() {
        let dir = std::env::temp_dir().join(format!("snow-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("snow.toml");
        std::fs::write(&path, module_with("")).expect("write manifest");
        let manifest = Manifest::load(&path).expect("valid manifest");
        assert_eq!(manifest.modules[0].wasm, dir.join("m.wasm"));
        std::fs::remove_file(&path).expect("remove manifest");

        let err = Manifest::load(&path).expect_err("missing file");
        assert!(matches!(err, ManifestError::Read { .. }));
        assert_eq!(
            err.to_string(),
            format!("{}: cannot read the manifest", path.display())
        );
        let _ = std::fs::remove_dir(&dir);
    }

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert_eq!(parse_size("2gb"), Ok(2_000_000_000));
        assert_eq!(parse_size("0"), Ok(0));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("").is_err());
        assert_eq!(
            parse_size("5 parsecs"),
            Err("`5 parsecs` is not a size like 10MiB (unknown unit `parsecs`; use KiB, MiB or GiB)".to_string())
        );
        assert_eq!(
            parse_size("1.5GiB"),
            Err(
                "`1.5GiB` is not a size like 10MiB (use a whole number of a smaller unit)"
                    .to_string()
            )
        );
        assert!(parse_size("99999999999999999999GiB").is_err());
        assert_eq!(
            parse_size("17179869184GiB"),
            Err("`17179869184GiB` is too large".to_string())
        );
    }
}
