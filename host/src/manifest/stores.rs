//! `[[store]]` tables: each a name, a backend, and the keys that backend
//! takes. A key another backend takes is refused rather than ignored, so a
//! store meant to be Redis cannot quietly run in memory.

use std::path::Path;

use toml::Spanned;

use super::check::Checker;
use super::raw::{RawStore, SpannedSeq};
use super::value::Backend;
use crate::config::bounds;
use crate::kv::config::{default_key_prefix, DEFAULT_REDIS_TIMEOUT};
use crate::kv::{BackendConfig, StoreConfig, StoreLimits};

impl Checker<'_> {
    pub(super) fn stores(&mut self, raw: SpannedSeq<RawStore>) -> Vec<StoreConfig> {
        let mut stores = Vec::with_capacity(raw.0.len());
        let mut names: Vec<(String, usize)> = Vec::new();
        for (index, store) in raw.0.into_iter().enumerate() {
            if let Some(store) = self.store(index, store, &mut names) {
                stores.push(store);
            }
        }
        stores
    }

    fn store(
        &mut self,
        index: usize,
        store: Spanned<RawStore>,
        names: &mut Vec<(String, usize)>,
    ) -> Option<StoreConfig> {
        let header = store.span();
        let store = store.into_inner();
        let at = |key: &str| format!("store[{index}].{key}");

        let name = self.required(&at("name"), &header, store.name);
        if let Some((name, span)) = &name {
            self.unique(&at("name"), names, name, span.start);
        }
        let (backend, _) = self.required(&at("backend"), &header, store.backend)?;
        // Keys that only some backends take.
        let only =
            |this: &mut Self, key: &str, span: Option<std::ops::Range<usize>>, which: &str| {
                if let Some(span) = span {
                    this.invalid(&at(key), span, format!("only {which} stores take `{key}`"));
                }
            };
        if backend != Backend::File {
            only(self, "path", store.path.as_ref().map(Spanned::span), "file");
        }
        if backend != Backend::Redis {
            for (key, span) in [
                ("url", store.url.as_ref().map(Spanned::span)),
                ("url_env", store.url_env.as_ref().map(Spanned::span)),
                ("key_prefix", store.key_prefix.as_ref().map(Spanned::span)),
                ("timeout", store.timeout.as_ref().map(Spanned::span)),
            ] {
                only(self, key, span, "redis");
            }
        }
        if backend != Backend::Memory {
            only(
                self,
                "max_bytes",
                store.max_bytes.as_ref().map(Spanned::span),
                "memory",
            );
        }
        let defaults = StoreLimits::default();
        let limits = StoreLimits {
            max_key: self
                .bounded(
                    &at("max_key_size"),
                    store.max_key_size,
                    &bounds::MAX_KEY_SIZE,
                )
                .map_or(defaults.max_key, crate::config::saturate),
            max_value: self
                .bounded(
                    &at("max_value_size"),
                    store.max_value_size,
                    &bounds::MAX_VALUE_SIZE,
                )
                .map_or(defaults.max_value, crate::config::saturate),
            max_bytes: self
                .bounded(&at("max_bytes"), store.max_bytes, &bounds::MAX_STORE_BYTES)
                .map_or(defaults.max_bytes, crate::config::saturate),
        };
        let backend = match backend {
            Backend::Memory => BackendConfig::Memory,
            Backend::File => {
                let (path, _) = self.required(&at("path"), &header, store.path)?;
                BackendConfig::File {
                    path: self.beside_manifest(Path::new(&path)),
                }
            }
            Backend::Redis => {
                let name = name.as_ref().map_or("", |(name, _)| name.as_str());
                let url = self.redis_url(&at, &header, store.url, store.url_env)?;
                BackendConfig::Redis {
                    url,
                    key_prefix: self
                        .optional(&at("key_prefix"), store.key_prefix)
                        .unwrap_or_else(|| default_key_prefix(name)),
                    timeout: self
                        .bounded(&at("timeout"), store.timeout, &bounds::STORE_TIMEOUT)
                        .unwrap_or(DEFAULT_REDIS_TIMEOUT),
                }
            }
        };
        let (name, _) = name?;
        Some(StoreConfig {
            name,
            backend,
            limits,
        })
    }

    /// `url`, or the value of the variable `url_env` names: exactly one.
    fn redis_url(
        &mut self,
        at: &dyn Fn(&str) -> String,
        header: &std::ops::Range<usize>,
        url: super::raw::Field<super::value::RedisUrl>,
        url_env: super::raw::Field<super::value::EnvName>,
    ) -> Option<String> {
        match (url, url_env) {
            (Some(url), None) => self.value(&at("url"), url),
            (None, Some(var)) => {
                let (var, span) = self.spanned(&at("url_env"), var)?;
                let value = match std::env::var(&var) {
                    Ok(value) => value,
                    Err(_) => {
                        self.invalid(
                            &at("url_env"),
                            span,
                            format!("the environment variable {var} is not set (or not UTF-8)"),
                        );
                        return None;
                    }
                };
                match crate::kv::config::check_redis_url(&value) {
                    Ok(()) => Some(value),
                    Err(why) => {
                        self.invalid(&at("url_env"), span, format!("${var}: {why}"));
                        None
                    }
                }
            }
            (Some(url), Some(_)) => {
                self.invalid(&at("url"), url.span(), "give `url` or `url_env`, not both");
                None
            }
            (None, None) => {
                // Reported as the missing `url`.
                self.required::<super::value::RedisUrl>(&at("url"), header, None)?;
                None
            }
        }
    }
}
