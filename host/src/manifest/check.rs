//! From the document serde read to a [`Manifest`]: reports bad values with
//! their key path, missing and duplicate keys, and keeps the mistake that
//! comes first in the file, whatever order the checks run in.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::{position, ManifestError};
use super::raw::{Field, RawEnv, RawLimits, RawManifest, RawModule, SpannedSeq};
use super::value::{Checked, Kind, Rule, StoreName};
use super::{Manifest, ModuleSpec};
use crate::config::bounds::{self, Bound, Shown};
use crate::config::{ModuleLayer, ServerLayer};
use crate::outbound::AllowList;

pub(super) struct Checker<'a> {
    pub text: &'a str,
    pub path: &'a Path,
    /// The mistake nearest the top of the file so far, with its offset.
    pub first: Option<(usize, ManifestError)>,
}

impl Checker<'_> {
    pub(super) fn record(&mut self, offset: usize, err: ManifestError) {
        if self.first.as_ref().is_none_or(|(first, _)| offset < *first) {
            self.first = Some((offset, err));
        }
    }

    pub(super) fn invalid(&mut self, key: &str, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = position(self.text, span.start);
        let err = ManifestError::Invalid {
            path: self.path.to_path_buf(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
        };
        self.record(span.start, err);
    }

    /// The value, or `None` once why it is not one has been recorded.
    pub(super) fn value<K: Kind>(
        &mut self,
        key: &str,
        value: Spanned<Checked<K>>,
    ) -> Option<K::Out> {
        self.spanned(key, value).map(|(value, _)| value)
    }

    pub(super) fn spanned<K: Kind>(
        &mut self,
        key: &str,
        value: Spanned<Checked<K>>,
    ) -> Option<(K::Out, Range<usize>)> {
        let span = value.span();
        match value.into_inner().0 {
            Ok(value) => Some((value, span)),
            Err(why) => {
                self.invalid(key, span, why);
                None
            }
        }
    }

    pub(super) fn optional<K: Kind>(&mut self, key: &str, field: Field<K>) -> Option<K::Out> {
        field.and_then(|value| self.value(key, value))
    }

    /// An optional value that must also lie within `bound`.
    pub(super) fn bounded<K: Kind>(
        &mut self,
        key: &str,
        field: Field<K>,
        bound: &Bound<K::Out>,
    ) -> Option<K::Out>
    where
        K::Out: Shown,
    {
        let (value, span) = self.spanned(key, field?)?;
        match bound.check(value) {
            Ok(value) => Some(value),
            Err(why) => {
                self.invalid(key, span, why);
                None
            }
        }
    }

    /// A key every `[[module]]` (or `[[store]]`) needs; a missing one is
    /// reported at `header`.
    pub(super) fn required<K: Kind>(
        &mut self,
        key: &str,
        header: &Range<usize>,
        field: Field<K>,
    ) -> Option<(K::Out, Range<usize>)> {
        let Some(value) = field else {
            let (line, column) = position(self.text, header.start);
            let needs = if key.starts_with("store[") {
                "every [[store]] needs name and backend; a file store a path, a redis store a url or url_env"
            } else {
                "every [[module]] needs name, prefix and wasm"
            };
            let err = ManifestError::Missing {
                path: self.path.to_path_buf(),
                line,
                column,
                key: key.to_string(),
                needs,
            };
            self.record(header.start, err);
            return None;
        };
        self.spanned(key, value)
    }

    pub fn manifest(&mut self, raw: RawManifest) -> Manifest {
        let mut server = ServerLayer {
            listen: self.optional("listen", raw.listen),
            workers: self.bounded("workers", raw.workers, &bounds::WORKERS),
            busy_poll: self.optional("busy_poll", raw.busy_poll),
            sched_slice: self.optional("sched_slice", raw.sched_slice),
            admin: self.optional("admin", raw.admin),
            admin_token_file: self
                .optional("admin_token_file", raw.admin_token_file)
                .map(|path| self.beside_manifest(Path::new(&path))),
            health: self.optional("health", raw.health),
            ..ServerLayer::default()
        };
        if let Some(limits) = raw.limits {
            self.limits(limits, &mut server);
        }
        if let Some(stores) = raw.store {
            server.stores = Some(self.stores(stores.into_inner()));
        }
        let declared: Vec<String> = match &server.stores {
            Some(stores) => stores.iter().map(|s| s.name.clone()).collect(),
            None => vec![crate::kv::DEFAULT_STORE.to_owned()],
        };
        let modules = match raw.module {
            None => {
                let err = ManifestError::NoModules {
                    path: self.path.to_path_buf(),
                };
                self.record(usize::MAX, err);
                Vec::new()
            }
            Some(modules) => {
                let span = modules.span();
                let SpannedSeq(modules) = modules.into_inner();
                if modules.is_empty() {
                    self.invalid("module", span, "at least one [[module]] is required");
                }
                self.modules(modules, &declared)
            }
        };
        Manifest {
            path: self.path.to_path_buf(),
            server,
            modules,
        }
    }

    fn limits(&mut self, raw: RawLimits, server: &mut ServerLayer) {
        use bounds::{
            DRAIN_DELAY, GRACE, MAX_BODY, MAX_CONNECTIONS, MAX_PARKED, MAX_STACK, SEND_TIMEOUT,
            STREAM_IDLE_TIMEOUT, TIMEOUT,
        };
        server.max_body = self.bounded("limits.max_body", raw.max_body, &MAX_BODY);
        server.header_timeout = self.bounded("limits.header_timeout", raw.header_timeout, &TIMEOUT);
        server.idle_timeout = self.bounded("limits.idle_timeout", raw.idle_timeout, &TIMEOUT);
        server.send_timeout = self.bounded("limits.send_timeout", raw.send_timeout, &SEND_TIMEOUT);
        server.stream_idle_timeout = self.bounded(
            "limits.stream_idle_timeout",
            raw.stream_idle_timeout,
            &STREAM_IDLE_TIMEOUT,
        );
        server.request_timeout =
            self.bounded("limits.request_timeout", raw.request_timeout, &TIMEOUT);
        server.grace = self.bounded("limits.grace", raw.grace, &GRACE);
        server.drain_delay = self.bounded("limits.drain_delay", raw.drain_delay, &DRAIN_DELAY);
        server.max_parked = self.bounded("limits.max_parked", raw.max_parked, &MAX_PARKED);
        server.max_connections = self.bounded(
            "limits.max_connections",
            raw.max_connections,
            &MAX_CONNECTIONS,
        );
        server.max_stack = self
            .bounded("limits.max_stack", raw.max_stack, &MAX_STACK)
            .map(crate::config::saturate);
        server.max_store_ops = self.bounded(
            "limits.max_store_ops",
            raw.max_store_ops,
            &bounds::MAX_STORE_OPS,
        );
    }

    fn modules(&mut self, raw: Vec<Spanned<RawModule>>, stores: &[String]) -> Vec<ModuleSpec> {
        let mut modules = Vec::with_capacity(raw.len());
        // (value, offset of its first use) for the duplicate checks.
        let mut names: Vec<(String, usize)> = Vec::new();
        let mut prefixes: Vec<(String, usize)> = Vec::new();
        for (index, module) in raw.into_iter().enumerate() {
            let header = module.span();
            let module = module.into_inner();
            let at = |key: &str| format!("module[{index}].{key}");

            let name = self.required(&at("name"), &header, module.name);
            if let Some((name, span)) = &name {
                self.unique(&at("name"), &mut names, name, span.start);
            }
            let prefix = self.required(&at("prefix"), &header, module.prefix);
            if let Some((prefix, span)) = &prefix {
                self.unique(&at("prefix"), &mut prefixes, prefix, span.start);
            }
            let wasm = self.required(&at("wasm"), &header, module.wasm);
            if let Some(stack) = module.max_stack {
                self.invalid(
                    &at("max_stack"),
                    stack.span(),
                    "the wasm stack is one setting for the whole server, not per module; \
                     set max_stack in [limits] (or --max-stack)",
                );
            }
            let settings = ModuleLayer {
                isolation: self.optional(&at("isolation"), module.isolation),
                max_memory: self
                    .bounded(&at("max_memory"), module.max_memory, &bounds::MAX_MEMORY)
                    .map(crate::config::saturate),
                max_call_time: self.bounded(
                    &at("max_call_time"),
                    module.max_call_time,
                    &bounds::MAX_CALL_TIME,
                ),
                max_body: self.bounded(&at("max_body"), module.max_body, &bounds::MAX_BODY),
                allow_outbound: module
                    .allow_outbound
                    .map(|rules| self.outbound(&at("allow_outbound"), rules.into_inner())),
                stores: module
                    .stores
                    .map(|names| self.grants(&at("stores"), names.into_inner(), stores)),
            };
            let watch = self.optional(&at("watch"), module.watch).unwrap_or(true);
            let env = module
                .env
                .map(|env| self.env(&at("env"), env))
                .unwrap_or_default();

            // A missing or bad required key has been recorded, which makes
            // the whole parse fail; the module itself is not needed then.
            if let (Some((name, _)), Some((prefix, _)), Some((wasm, _))) = (name, prefix, wasm) {
                modules.push(ModuleSpec {
                    name,
                    prefix,
                    wasm: self.beside_manifest(Path::new(&wasm)),
                    watch,
                    env,
                    settings,
                });
            }
        }
        modules
    }

    /// A module's `stores`: each declared (or the implicit `default`), once.
    fn grants(
        &mut self,
        key: &str,
        names: SpannedSeq<Checked<StoreName>>,
        declared: &[String],
    ) -> Vec<String> {
        let mut granted: Vec<(String, usize)> = Vec::new();
        for (i, name) in names.0.into_iter().enumerate() {
            let key = format!("{key}[{i}]");
            let Some((name, span)) = self.spanned(&key, name) else {
                continue;
            };
            if !declared.contains(&name) {
                let why = format!(
                    "no [[store]] is named `{name}` (declared: {})",
                    declared.join(", ")
                );
                self.invalid(&key, span, why);
                continue;
            }
            self.unique(&key, &mut granted, &name, span.start);
        }
        granted.into_iter().map(|(name, _)| name).collect()
    }

    pub(super) fn unique(
        &mut self,
        key: &str,
        seen: &mut Vec<(String, usize)>,
        value: &str,
        offset: usize,
    ) {
        match seen.iter().find(|(v, _)| v == value) {
            Some(&(_, first)) => {
                let (line, column) = position(self.text, offset);
                let err = ManifestError::Duplicate {
                    path: self.path.to_path_buf(),
                    line,
                    column,
                    key: key.to_string(),
                    value: value.to_string(),
                    first_line: position(self.text, first).0,
                };
                self.record(offset, err);
            }
            None => seen.push((value.to_string(), offset)),
        }
    }

    /// Relative paths are resolved against the manifest's directory.
    pub(super) fn beside_manifest(&self, file: &Path) -> PathBuf {
        match self.path.parent() {
            Some(dir) => dir.join(file),
            None => file.to_path_buf(),
        }
    }

    fn outbound(&mut self, key: &str, rules: SpannedSeq<Checked<Rule>>) -> AllowList {
        let rules = rules
            .0
            .into_iter()
            .enumerate()
            .filter_map(|(i, rule)| self.value(&format!("{key}[{i}]"), rule))
            .collect();
        AllowList::new(rules)
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
            if let Some(value) = self.value(&key, value) {
                vars.push((name, value));
            }
        }
        vars.sort();
        vars
    }
}

fn valid_env_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
