//! The Redis backend (to be written).

use std::time::Duration;

use anyhow::Result;

use super::op::{KvError, Op, Output};
use super::{Backend, Pending};

pub struct RedisStore;

impl RedisStore {
    pub fn new(url: &str, _key_prefix: &str, _timeout: Duration) -> Result<Self> {
        anyhow::bail!("{url}: the redis backend is not available yet")
    }
}

impl Backend for RedisStore {
    fn kind(&self) -> &'static str {
        "redis"
    }

    fn run(&self, _op: Op) -> Pending<Result<Output, KvError>> {
        Box::pin(std::future::ready(Err(KvError::Unavailable(
            "not built".into(),
        ))))
    }

    fn ready(&self) -> Pending<Result<(), String>> {
        Box::pin(std::future::ready(Err("not built".into())))
    }
}
