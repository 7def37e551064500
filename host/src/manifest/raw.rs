//! The document as serde reads it. Tables are structs so that
//! `deny_unknown_fields` catches misspelt keys; values are typed
//! ([`Checked`]) and keep their spans for the checker's messages.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

use super::value::{
    Address, Admin, AdminTokenPath, BackendKind, BusyPoll, Checked, Count, EnvName, EnvValue, Flag,
    HealthAddress, Mode, Name, Prefix, RedisUrl, Rule, SchedSlice, Size, StoreName, Time, WasmPath,
};

/// A key that may be left out.
pub(super) type Field<K> = Option<Spanned<Checked<K>>>;

/// The keys of each table, in the order serde lists them in its
/// unknown-field message, which is how that message's table is recognised.
pub(super) const TOP_KEYS: &[&str] = &[
    "listen",
    "workers",
    "busy_poll",
    "sched_slice",
    "admin",
    "admin_token_file",
    "health",
    "limits",
    "store",
    "module",
];
pub(super) const LIMITS_KEYS: &[&str] = &[
    "max_body",
    "header_timeout",
    "idle_timeout",
    "send_timeout",
    "stream_idle_timeout",
    "request_timeout",
    "grace",
    "drain_delay",
    "max_parked",
    "max_connections",
    "max_stack",
    "max_store_ops",
];
pub(super) const MODULE_KEYS: &[&str] = &[
    "name",
    "prefix",
    "wasm",
    "isolation",
    "max_memory",
    "max_call_time",
    "max_body",
    "max_stack",
    "watch",
    "allow_outbound",
    "stores",
    "env",
];
pub(super) const STORE_KEYS: &[&str] = &[
    "name",
    "backend",
    "path",
    "url",
    "url_env",
    "key_prefix",
    "timeout",
    "max_key_size",
    "max_value_size",
    "max_bytes",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawManifest {
    pub listen: Field<Address>,
    pub workers: Field<Count>,
    pub busy_poll: Field<BusyPoll>,
    pub sched_slice: Field<SchedSlice>,
    pub admin: Field<Admin>,
    pub admin_token_file: Field<AdminTokenPath>,
    pub health: Field<HealthAddress>,
    pub limits: Option<RawLimits>,
    pub store: Option<Spanned<SpannedSeq<RawStore>>>,
    pub module: Option<Spanned<SpannedSeq<RawModule>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [limits] table")]
pub(super) struct RawLimits {
    pub max_body: Field<Size>,
    pub header_timeout: Field<Time>,
    pub idle_timeout: Field<Time>,
    pub send_timeout: Field<Time>,
    pub stream_idle_timeout: Field<Time>,
    pub request_timeout: Field<Time>,
    pub grace: Field<Time>,
    pub drain_delay: Field<Time>,
    pub max_parked: Field<Count>,
    pub max_connections: Field<Count>,
    pub max_stack: Field<Size>,
    pub max_store_ops: Field<Count>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[store]] table")]
pub(super) struct RawStore {
    pub name: Field<StoreName>,
    pub backend: Field<BackendKind>,
    pub path: Field<WasmPath>,
    pub url: Field<RedisUrl>,
    pub url_env: Field<EnvName>,
    pub key_prefix: Field<EnvValue>,
    pub timeout: Field<Time>,
    pub max_key_size: Field<Size>,
    pub max_value_size: Field<Size>,
    pub max_bytes: Field<Size>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a [[module]] table")]
pub(super) struct RawModule {
    pub name: Field<Name>,
    pub prefix: Field<Prefix>,
    pub wasm: Field<WasmPath>,
    pub isolation: Field<Mode>,
    pub max_memory: Field<Size>,
    pub max_call_time: Field<Time>,
    pub max_body: Field<Size>,
    /// Known, so that it is refused with a pointer to the server setting
    /// rather than as a misspelling.
    pub max_stack: Option<Spanned<IgnoredAny>>,
    pub watch: Field<Flag>,
    pub allow_outbound: Option<Spanned<SpannedSeq<Checked<Rule>>>>,
    pub stores: Option<Spanned<SpannedSeq<Checked<StoreName>>>>,
    pub env: Option<RawEnv>,
}

/// Names the array a type comes in, for type errors.
pub(super) trait ArrayOf {
    const EXPECTING: &'static str;
}

impl ArrayOf for RawModule {
    const EXPECTING: &'static str = "an array of [[module]] tables";
}

impl ArrayOf for Checked<Rule> {
    const EXPECTING: &'static str = "an array of strings";
}

impl ArrayOf for RawStore {
    const EXPECTING: &'static str = "an array of [[store]] tables";
}

impl ArrayOf for Checked<StoreName> {
    const EXPECTING: &'static str = "an array of store names";
}

/// An array whose elements keep their own spans.
pub(super) struct SpannedSeq<T>(pub Vec<Spanned<T>>);

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
pub(super) struct RawEnv(pub Vec<(Spanned<String>, Spanned<Checked<EnvValue>>)>);

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
