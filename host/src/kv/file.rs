//! The file backend (to be written).

use std::path::Path;

use anyhow::Result;

use super::op::{KvError, Op, Output};
use super::{Backend, Pending};

pub struct FileStore;

impl FileStore {
    pub fn open(path: &Path) -> Result<Self> {
        anyhow::bail!("{}: the file backend is not available yet", path.display())
    }
}

impl Backend for FileStore {
    fn kind(&self) -> &'static str {
        "file"
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
