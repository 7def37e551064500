//! What a finished host operation delivers, in the SDK's own types:
//! `boundary` makes it from the WIT `completion`, the executor keeps it in
//! the slot of the op that awaits it, and the op's future takes it from there.

use crate::body::BodyError;
use crate::kv::{KvError, KvOutput};
use crate::outbound::FetchError;
use crate::Response;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Completion {
    /// A timer reached its deadline.
    Timer,
    /// An outbound request finished.
    Fetch(Result<Response, FetchError>),
    /// A store operation finished.
    Kv(Result<KvOutput, KvError>),
    /// A read of the request body: bytes, or none at its end.
    Body(Result<Option<Vec<u8>>, BodyError>),
    /// A write of a streamed response: whether the host took it.
    Written(bool),
    /// A fetch's head, its body left at the host under this handle.
    FetchHead(Result<(u16, crate::response::Headers, u32), FetchError>),
}
