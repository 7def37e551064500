//! Each operation as Redis commands, atomic on the server: one command, or
//! one Lua script where the check and the write must not be split.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{cmd, Script};

use super::errors::Failure;
use crate::kv::op::{add, parse_counter, KvError, Op, Output, PAGE};

/// Compare-and-swap: `ARGV[1]` is `1` when a value is expected (then
/// `ARGV[2]`) and `0` when the key must be unset; `ARGV[3]` is the new
/// value; `ARGV[4]` is a TTL in ms, empty for none, or `keep` to keep the
/// key's own (what `increment` does). Answers 1 when it wrote, 0 when the
/// current value was not the expected one.
static CAS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if ARGV[1] == '1' then
  if current ~= ARGV[2] then return 0 end
elseif current then
  return 0
end
if ARGV[4] == 'keep' then
  redis.call('SET', KEYS[1], ARGV[3], 'KEEPTTL')
elseif ARGV[4] ~= '' then
  redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
else
  redis.call('SET', KEYS[1], ARGV[3])
end
return 1
",
    )
});

/// SCAN calls one `list_keys` makes at most while they find nothing, so
/// a sparse prefix rarely answers an empty page with more to come, and a
/// huge keyspace never keeps the server busy for one call.
const SCAN_ROUNDS: usize = 16;

/// Which TTL a write sets.
enum Ttl {
    None,
    For(Duration),
    /// The key's current one, if any.
    Keep,
}

impl Ttl {
    fn arg(&self) -> String {
        match self {
            Ttl::None => String::new(),
            Ttl::For(ttl) => millis(*ttl).to_string(),
            Ttl::Keep => "keep".into(),
        }
    }
}

fn millis(ttl: Duration) -> u64 {
    // `check` bounds TTLs by MAX_TTL, far inside u64 and Redis's range; a
    // TTL of 0 never gets here (it is refused), and PX 0 would be an error.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// The keys of one store on the server: its prefix, then the module's key.
pub struct Keys<'a> {
    pub prefix: &'a str,
}

impl Keys<'_> {
    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Runs `op` once on `conn`.
    pub async fn run(
        &self,
        conn: &mut (impl ConnectionLike + Send),
        op: &Op,
    ) -> Result<Output, Failure> {
        match op {
            Op::Get { key } => {
                let value: Option<Vec<u8>> =
                    cmd("GET").arg(self.full(key)).query_async(conn).await?;
                Ok(Output::Value(value))
            }
            Op::Exists { key } => {
                let count: i64 = cmd("EXISTS").arg(self.full(key)).query_async(conn).await?;
                Ok(Output::Exists(count > 0))
            }
            Op::Set { key, value, ttl } => {
                let mut set = cmd("SET");
                set.arg(self.full(key)).arg(value.as_slice());
                if let Some(ttl) = ttl {
                    set.arg("PX").arg(millis(*ttl));
                }
                set.query_async::<()>(conn).await?;
                Ok(Output::Done)
            }
            Op::Delete { key } => {
                cmd("DEL")
                    .arg(self.full(key))
                    .query_async::<()>(conn)
                    .await?;
                Ok(Output::Done)
            }
            Op::Increment { key, delta } => self.increment(conn, key, *delta).await,
            Op::CompareAndSwap {
                key,
                expected,
                value,
                ttl,
            } => {
                let ttl = ttl.map_or(Ttl::None, Ttl::For);
                match self
                    .swap(conn, key, expected.as_deref(), value, &ttl)
                    .await?
                {
                    true => Ok(Output::Done),
                    false => Err(KvError::Conflict.into()),
                }
            }
            Op::ListKeys {
                prefix,
                cursor,
                limit,
            } => self.list(conn, prefix, cursor.as_deref(), *limit).await,
        }
    }

    async fn swap(
        &self,
        conn: &mut (impl ConnectionLike + Send),
        key: &str,
        expected: Option<&[u8]>,
        value: &[u8],
        ttl: &Ttl,
    ) -> Result<bool, Failure> {
        let mut call = CAS.key(self.full(key));
        match expected {
            Some(expected) => call.arg("1").arg(expected),
            None => call.arg("0").arg(""),
        };
        let wrote: i64 = call.arg(value).arg(ttl.arg()).invoke_async(conn).await?;
        Ok(wrote == 1)
    }

    /// `INCRBY`, which keeps the key's TTL as the memory store does. Redis
    /// reads fewer spellings of an integer than the other stores (`+5`,
    /// `007`, `-0`): for a value it refuses, the value is read here and, if
    /// it is a counter after all, swapped for the sum, the TTL kept.
    async fn increment(
        &self,
        conn: &mut (impl ConnectionLike + Send),
        key: &str,
        delta: i64,
    ) -> Result<Output, Failure> {
        let full = self.full(key);
        loop {
            let refused = match cmd("INCRBY")
                .arg(&full)
                .arg(delta)
                .query_async::<i64>(conn)
                .await
            {
                Ok(next) => return Ok(Output::Number(next)),
                Err(err) => err,
            };
            let not_integer = refused
                .detail()
                .is_some_and(|detail| detail.contains("not an integer"));
            if !not_integer {
                return Err(refused.into());
            }
            let value: Option<Vec<u8>> = cmd("GET").arg(&full).query_async(conn).await?;
            let Some(value) = value else {
                // Deleted since: INCRBY counts from 0 now.
                continue;
            };
            let next = add(parse_counter(Some(&value))?, delta)?;
            let written = next.to_string();
            if self
                .swap(conn, key, Some(&value), written.as_bytes(), &Ttl::Keep)
                .await?
            {
                return Ok(Output::Number(next));
            }
            // Changed since it was read: start over. The caller's
            // deadline bounds the loop.
        }
    }

    /// One page of keys by `SCAN`: the cursor is Redis's, in decimal.
    async fn list(
        &self,
        conn: &mut (impl ConnectionLike + Send),
        prefix: &str,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Output, Failure> {
        let mut cursor: u64 = match cursor {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| KvError::Invalid("the cursor is not one this store gave".into()))?,
        };
        let own = format!("{}{prefix}", self.prefix);
        let pattern = format!("{}*", glob_escape(&own));
        let mut keys = Vec::new();
        for _ in 0..SCAN_ROUNDS {
            let (next, found): (String, Vec<Vec<u8>>) = cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(limit)
                .query_async(conn)
                .await?;
            cursor = next.parse().map_err(|_| {
                Failure::Down(redis::RedisError::from((
                    redis::ErrorKind::Parse,
                    "SCAN answered a cursor that is not a number",
                )))
            })?;
            // The pattern already keeps to the prefix; checking again costs
            // nothing and holds even if the server matched loosely. A key
            // that is not UTF-8 was not written through a store.
            keys.extend(found.into_iter().filter_map(|full| {
                let full = String::from_utf8(full).ok()?;
                let key = full.strip_prefix(self.prefix)?;
                key.starts_with(prefix).then(|| key.to_owned())
            }));
            if !keys.is_empty() || cursor == 0 {
                break;
            }
        }
        if keys.len() > PAGE {
            // COUNT is a hint: one call can return more than asked. The
            // cursor cannot point inside a call's answer, so the rest of it
            // is lost to this listing.
            tracing::warn!(
                found = keys.len(),
                "a Redis SCAN returned more keys than a page holds; some are not listed"
            );
            keys.truncate(PAGE);
        }
        let cursor = (cursor != 0).then(|| cursor.to_string());
        Ok(Output::Keys { keys, cursor })
    }
}

/// `text` as a glob pattern matching exactly it: `*`, `?`, `[`, `]` and
/// `\` escaped with `\`.
pub fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// `PING`, for readiness.
pub async fn ping(conn: &mut (impl ConnectionLike + Send)) -> Result<(), Failure> {
    cmd("PING").query_async::<String>(conn).await?;
    Ok(())
}
