//! Against a real `redis-server` of the test's own (snow_testing::Redis);
//! skipped, saying so, where none is installed.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use snow_testing::Redis;

use super::commands::glob_escape;
use super::RedisStore;
use crate::kv::conformance::{conformance, runtime, serves_any_runtime, Leeway};
use crate::kv::op::{KvError, Op, Output, PAGE};
use crate::kv::Backend;

/// How long operations may take before they fail as unavailable, in these
/// tests: short, so a server that is down is found out fast.
const TIMEOUT: Duration = Duration::from_millis(500);

/// A server for `test`, or `None` (and a line saying the test is skipped)
/// when redis-server is not installed.
fn server(test: &str) -> Option<Redis> {
    let Some(binary) = Redis::binary() else {
        println!(
            "skipped {test}: redis-server is not installed (apt-get install redis-server, or \
             set REDIS_SERVER)"
        );
        return None;
    };
    Some(Redis::start_with(&binary).unwrap_or_else(|err| panic!("starting redis-server: {err}")))
}

fn store(redis: &Redis, prefix: &str) -> RedisStore {
    RedisStore::new(&redis.url(), prefix, TIMEOUT).unwrap()
}

fn set(key: &str, value: &[u8]) -> Op {
    Op::Set {
        key: key.into(),
        value: value.to_vec(),
        ttl: None,
    }
}

fn get(key: &str) -> Op {
    Op::Get { key: key.into() }
}

fn incr(key: &str) -> Op {
    Op::Increment {
        key: key.into(),
        delta: 1,
    }
}

async fn keys(store: &RedisStore, prefix: &str) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let op = Op::ListKeys {
            prefix: prefix.into(),
            cursor,
            limit: PAGE,
        };
        let Ok(Output::Keys { keys, cursor: next }) = store.run(op).await else {
            panic!("listing {prefix:?} failed")
        };
        all.extend(keys);
        match next {
            Some(next) => cursor = Some(next),
            None => return all,
        }
    }
    panic!("listing {prefix:?} never ends")
}

fn unavailable(result: &Result<Output, KvError>) -> bool {
    matches!(result, Err(KvError::Unavailable(_)))
}

#[tokio::test]
async fn passes_the_conformance_script() {
    let Some(redis) = server("passes_the_conformance_script") else {
        return;
    };
    let store = store(&redis, "snow:conformance:");
    conformance(&store, Leeway { exact_pages: false }).await;
    // Everything it wrote is under its prefix.
    assert_eq!(redis.command("EXISTS k").unwrap(), ":0");
    assert_eq!(redis.command("EXISTS snow:conformance:k").unwrap(), ":1");
}

#[tokio::test]
async fn key_prefixes_keep_stores_apart() {
    let Some(redis) = server("key_prefixes_keep_stores_apart") else {
        return;
    };
    let (a, b) = (store(&redis, "a:"), store(&redis, "b:"));
    assert_eq!(a.run(set("k", b"from a")).await, Ok(Output::Done));
    assert_eq!(b.run(set("k", b"from b")).await, Ok(Output::Done));
    assert_eq!(a.run(incr("n")).await, Ok(Output::Number(1)));
    assert_eq!(
        b.run(get("k")).await,
        Ok(Output::Value(Some(b"from b".to_vec())))
    );
    assert_eq!(
        a.run(get("k")).await,
        Ok(Output::Value(Some(b"from a".to_vec())))
    );
    assert_eq!(b.run(get("n")).await, Ok(Output::Value(None)));
    assert_eq!(
        a.run(Op::Delete { key: "k".into() }).await,
        Ok(Output::Done)
    );
    assert_eq!(
        b.run(get("k")).await,
        Ok(Output::Value(Some(b"from b".to_vec())))
    );
    assert_eq!(keys(&a, "").await, ["n".to_owned()].into());
    assert_eq!(keys(&b, "").await, ["k".to_owned()].into());
    assert_eq!(redis.command("GET b:k").unwrap(), "$6");
}

#[tokio::test]
async fn glob_characters_in_prefixes_match_only_themselves() {
    let Some(redis) = server("glob_characters_in_prefixes_match_only_themselves") else {
        return;
    };
    // A key prefix full of glob syntax, beside a store whose keys the
    // unescaped pattern would match.
    let hostile = store(&redis, "x*[a]?\\:");
    let beside = store(&redis, "xya]z\\:");
    let plain = ["a*", "a?", "ab", "a[b]", "a\\b", "a\\", "b"];
    for key in plain {
        assert_eq!(hostile.run(set(key, b"v")).await, Ok(Output::Done));
        assert_eq!(beside.run(set(key, b"v")).await, Ok(Output::Done));
    }
    let all: BTreeSet<String> = plain.iter().map(|k| k.to_string()).collect();
    assert_eq!(keys(&hostile, "").await, all);
    assert_eq!(keys(&beside, "").await, all);
    for (prefix, expected) in [
        ("a*", &["a*"][..]),
        ("a?", &["a?"]),
        ("a[", &["a[b]"]),
        ("a[b]", &["a[b]"]),
        ("a\\", &["a\\b", "a\\"]),
        ("a", &["a*", "a?", "ab", "a[b]", "a\\b", "a\\"]),
        ("[", &[]),
        ("*", &[]),
    ] {
        let expected: BTreeSet<String> = expected.iter().map(|k| k.to_string()).collect();
        assert_eq!(keys(&hostile, prefix).await, expected, "prefix {prefix:?}");
        assert_eq!(keys(&beside, prefix).await, expected, "prefix {prefix:?}");
    }
}

#[test]
fn glob_escaping_covers_every_special_character() {
    assert_eq!(glob_escape("plain:key"), "plain:key");
    assert_eq!(glob_escape("a*b?c[d]e\\f"), "a\\*b\\?c\\[d\\]e\\\\f");
    assert_eq!(glob_escape("ключ*"), "ключ\\*");
}

#[tokio::test]
async fn a_bogus_cursor_is_refused_and_a_numeric_one_stays_in_the_prefix() {
    let Some(redis) = server("a_bogus_cursor_is_refused") else {
        return;
    };
    let store = store(&redis, "c:");
    for i in 0..50 {
        assert_eq!(
            store.run(set(&format!("in:{i}"), b"v")).await,
            Ok(Output::Done)
        );
        assert_eq!(
            store.run(set(&format!("out:{i}"), b"v")).await,
            Ok(Output::Done)
        );
    }
    let list = |cursor: &str| Op::ListKeys {
        prefix: "in:".into(),
        cursor: Some(cursor.into()),
        limit: 5,
    };
    for bogus in ["abc", "-1", "1.5", "", " 1", "99999999999999999999999"] {
        assert!(
            matches!(store.run(list(bogus)).await, Err(KvError::Invalid(_))),
            "{bogus:?}"
        );
    }
    for numeric in ["1", "7", "12345", "18446744073709551615"] {
        match store.run(list(numeric)).await {
            Ok(Output::Keys { keys, .. }) => {
                assert!(keys.iter().all(|k| k.starts_with("in:")), "{keys:?}")
            }
            other => panic!("{numeric}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn down_is_unavailable_promptly_and_back_is_used_again() {
    let Some(mut redis) = server("down_is_unavailable_promptly") else {
        return;
    };
    let store = store(&redis, "d:");
    assert_eq!(store.run(set("k", b"v")).await, Ok(Output::Done));
    redis.kill().unwrap();

    for op in [get("k"), incr("n"), set("k", b"w")] {
        let started = Instant::now();
        let result = store.run(op).await;
        let took = started.elapsed();
        assert!(unavailable(&result), "{result:?}");
        println!("redis down: unavailable after {took:?}");
        assert!(took < TIMEOUT + Duration::from_secs(1), "{took:?}");
    }
    let started = Instant::now();
    assert!(store.ready().await.is_err());
    assert!(started.elapsed() < TIMEOUT + Duration::from_secs(1));

    redis.restart().unwrap();
    // The same store, not a new one: the first operation after the restart
    // already works, the manager having reconnected (or being told to).
    let started = Instant::now();
    assert_eq!(store.run(incr("n")).await, Ok(Output::Number(1)));
    println!(
        "redis back: first operation answered after {:?}",
        started.elapsed()
    );
    assert_eq!(store.ready().await, Ok(()));
    assert_eq!(store.run(get("k")).await, Ok(Output::Value(None)));

    // Restarted under a live connection, unseen: a read is tried again on
    // a new connection at once; an increment is not (it may have been
    // applied before the connection broke), so at most one fails.
    redis.restart().unwrap();
    assert_eq!(store.run(get("n")).await, Ok(Output::Value(None)));
    redis.restart().unwrap();
    let first = store.run(incr("n")).await;
    println!("redis restarted unseen: the next increment answered {first:?}");
    assert!(
        first == Ok(Output::Number(1)) || unavailable(&first),
        "{first:?}"
    );
    assert!(matches!(
        store.run(incr("n")).await,
        Ok(Output::Number(1 | 2))
    ));
}

#[tokio::test]
async fn a_server_that_hangs_times_out_and_is_used_again_when_it_answers() {
    let Some(redis) = server("a_server_that_hangs_times_out") else {
        return;
    };
    let store = store(&redis, "h:");
    assert_eq!(store.run(incr("n")).await, Ok(Output::Number(1)));
    redis.pause().unwrap();
    for _ in 0..2 {
        let started = Instant::now();
        let result = store.run(incr("n")).await;
        let took = started.elapsed();
        assert!(unavailable(&result), "{result:?}");
        println!("redis hung: unavailable after {took:?}");
        assert!(
            took >= TIMEOUT / 2 && took < TIMEOUT + Duration::from_secs(1),
            "{took:?}"
        );
    }
    redis.resume().unwrap();
    // The increments that timed out may or may not have been applied: the
    // server got them, then stopped. Whatever they did, the store works.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match store.run(get("n")).await {
            Ok(Output::Value(Some(_))) => break,
            other if Instant::now() > deadline => panic!("not back: {other:?}"),
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    assert!(matches!(store.run(incr("n")).await, Ok(Output::Number(_))));
}

#[tokio::test]
async fn a_server_down_at_start_is_not_an_error() {
    let Some(mut redis) = server("a_server_down_at_start_is_not_an_error") else {
        return;
    };
    redis.kill().unwrap();
    let started = Instant::now();
    let store = store(&redis, "s:");
    assert!(started.elapsed() < Duration::from_millis(200));
    assert!(unavailable(&store.run(get("k")).await));
    redis.restart().unwrap();
    assert_eq!(store.run(set("k", b"v")).await, Ok(Output::Done));
    assert_eq!(
        store.run(get("k")).await,
        Ok(Output::Value(Some(b"v".to_vec())))
    );
}

#[test]
fn serves_any_runtime_and_none() {
    let Some(redis) = server("serves_any_runtime_and_none") else {
        return;
    };
    let store: Arc<dyn Backend> = Arc::new(store(&redis, "r:"));
    serves_any_runtime(&store);
    // Dropped inside a runtime, as a server shutting down may.
    runtime().block_on(async move { drop(store) });
}

#[test]
fn unusable_urls_are_refused_without_their_password() {
    for url in [
        "redis://user:s3cret@/",
        "redis://user:s3cret@127.0.0.1:6379/not-a-db",
        "http://user:s3cret@127.0.0.1/",
        "redis://user:s3cret@127.0.0.1:6379/?protocol=nine",
    ] {
        let err = RedisStore::new(url, "p:", TIMEOUT).err().expect(url);
        let message = format!("{err:#}");
        assert!(!message.contains("s3cret"), "{message}");
        assert!(
            message.contains("***") || !message.contains("user"),
            "{message}"
        );
    }
    // Down, unreachable, or unresolvable: not refused, only unavailable.
    assert!(RedisStore::new("redis://127.0.0.1:1/0", "p:", TIMEOUT).is_ok());
    assert!(RedisStore::new("redis://no-such-host.invalid:6379", "p:", TIMEOUT).is_ok());
}
