use std::time::Duration;

use super::conformance::{conformance, Leeway};
use super::memory::MemoryStore;
use super::op::{check, page_size, ttl, KvError, Op, Output};
use super::{StoreConfig, StoreLimits, Stores};

fn key(k: &str) -> String {
    k.to_owned()
}

fn set(store: &MemoryStore, k: &str, v: &[u8]) -> Result<Output, KvError> {
    store.apply(Op::Set {
        key: key(k),
        value: v.to_vec(),
        ttl: None,
    })
}

fn get(store: &MemoryStore, k: &str) -> Option<Vec<u8>> {
    match store.apply(Op::Get { key: key(k) }) {
        Ok(Output::Value(v)) => v,
        other => panic!("get {k}: {other:?}"),
    }
}

fn incr(store: &MemoryStore, k: &str, delta: i64) -> Result<Output, KvError> {
    store.apply(Op::Increment { key: key(k), delta })
}

#[test]
fn set_get_delete_exists() {
    let store = MemoryStore::new(1 << 20);
    assert_eq!(get(&store, "a"), None);
    assert_eq!(set(&store, "a", b"1"), Ok(Output::Done));
    assert_eq!(get(&store, "a").as_deref(), Some(&b"1"[..]));
    assert_eq!(
        store.apply(Op::Exists { key: key("a") }),
        Ok(Output::Exists(true))
    );
    assert_eq!(store.apply(Op::Delete { key: key("a") }), Ok(Output::Done));
    assert_eq!(
        store.apply(Op::Exists { key: key("a") }),
        Ok(Output::Exists(false))
    );
    // Deleting what is not there is not an error.
    assert_eq!(store.apply(Op::Delete { key: key("a") }), Ok(Output::Done));
}

#[test]
fn increment_counts_from_zero_and_refuses_what_is_not_a_number() {
    let store = MemoryStore::new(1 << 20);
    assert_eq!(incr(&store, "n", 1), Ok(Output::Number(1)));
    assert_eq!(incr(&store, "n", 41), Ok(Output::Number(42)));
    assert_eq!(incr(&store, "n", -50), Ok(Output::Number(-8)));
    assert_eq!(get(&store, "n").as_deref(), Some(&b"-8"[..]));
    set(&store, "text", b"twelve").unwrap();
    assert!(matches!(incr(&store, "text", 1), Err(KvError::Invalid(_))));
    set(&store, "max", i64::MAX.to_string().as_bytes()).unwrap();
    assert!(matches!(incr(&store, "max", 1), Err(KvError::Invalid(_))));
    assert_eq!(get(&store, "max"), Some(i64::MAX.to_string().into_bytes()));
}

#[test]
fn compare_and_swap_conflicts_on_any_other_value() {
    let store = MemoryStore::new(1 << 20);
    let cas = |expected: Option<&[u8]>, value: &[u8]| {
        store.apply(Op::CompareAndSwap {
            key: key("k"),
            expected: expected.map(<[u8]>::to_vec),
            value: value.to_vec(),
            ttl: None,
        })
    };
    assert_eq!(cas(Some(b"x"), b"1"), Err(KvError::Conflict));
    assert_eq!(cas(None, b"1"), Ok(Output::Done));
    assert_eq!(cas(None, b"2"), Err(KvError::Conflict));
    assert_eq!(cas(Some(b"1"), b"2"), Ok(Output::Done));
    assert_eq!(get(&store, "k").as_deref(), Some(&b"2"[..]));
}

#[test]
fn ttl_expires_keys() {
    let store = MemoryStore::new(1 << 20);
    store
        .apply(Op::Set {
            key: key("t"),
            value: b"v".to_vec(),
            ttl: Some(Duration::from_millis(30)),
        })
        .unwrap();
    assert!(get(&store, "t").is_some());
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(get(&store, "t"), None);
    // An expired key neither lists nor counts on.
    store
        .apply(Op::Set {
            key: key("c"),
            value: b"5".to_vec(),
            ttl: Some(Duration::from_millis(30)),
        })
        .unwrap();
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(incr(&store, "c", 1), Ok(Output::Number(1)));
}

#[test]
fn list_keys_pages_through_a_prefix() {
    let store = MemoryStore::new(1 << 20);
    for k in ["a", "user:1", "user:2", "user:3", "user;", "v"] {
        set(&store, k, b"x").unwrap();
    }
    let list = |cursor: Option<String>| {
        store
            .apply(Op::ListKeys {
                prefix: "user:".into(),
                cursor,
                limit: 2,
            })
            .unwrap()
    };
    let Output::Keys { keys, cursor } = list(None) else {
        panic!("not keys")
    };
    assert_eq!(keys, ["user:1", "user:2"]);
    assert_eq!(cursor.as_deref(), Some("user:2"));
    let Output::Keys { keys, cursor } = list(cursor) else {
        panic!("not keys")
    };
    assert_eq!(keys, ["user:3"]);
    assert_eq!(cursor, None);
    // A hostile cursor before the prefix cannot reach other keys.
    let Output::Keys { keys, .. } = list(Some("a".into())) else {
        panic!("not keys")
    };
    assert_eq!(keys, ["user:1", "user:2"]);
}

#[test]
fn a_full_store_refuses_writes_but_not_overwrites_that_shrink() {
    let store = MemoryStore::new(1000);
    let big = vec![b'x'; 700];
    assert_eq!(set(&store, "a", &big), Ok(Output::Done));
    assert!(matches!(set(&store, "b", &big), Err(KvError::TooLarge(_))));
    assert_eq!(set(&store, "a", b"small"), Ok(Output::Done));
    assert_eq!(set(&store, "b", &big), Ok(Output::Done));
    store.apply(Op::Delete { key: key("a") }).unwrap();
    store.apply(Op::Delete { key: key("b") }).unwrap();
    // Deletes give the bytes back exactly.
    assert_eq!(set(&store, "c", &vec![b'y'; 900]), Ok(Output::Done));
}

#[test]
fn limits_are_checked_before_any_backend() {
    let limits = StoreLimits {
        max_key: 8,
        max_value: 4,
        max_bytes: 1 << 20,
    };
    let op = |key: &str, value: &[u8]| Op::Set {
        key: key.into(),
        value: value.to_vec(),
        ttl: None,
    };
    assert!(check(&op("k", b"1234"), &limits).is_ok());
    assert!(matches!(
        check(&op("", b"1"), &limits),
        Err(KvError::Invalid(_))
    ));
    assert!(matches!(
        check(&op("123456789", b"1"), &limits),
        Err(KvError::TooLarge(_))
    ));
    assert!(matches!(
        check(&op("k", b"12345"), &limits),
        Err(KvError::TooLarge(_))
    ));
    assert_eq!(page_size(0), super::op::PAGE);
    assert_eq!(page_size(u32::MAX), super::op::PAGE);
    assert_eq!(page_size(7), 7);
    assert!(matches!(ttl(Some(0)), Err(KvError::Invalid(_))));
    assert_eq!(ttl(Some(u64::MAX)), Ok(Some(super::op::MAX_TTL)));
}

#[test]
fn grants_deny_by_default_and_tell_denied_from_unknown() {
    let configs = [
        StoreConfig::default_memory(),
        StoreConfig::parse_flag("cache=memory").unwrap(),
    ];
    let stores = Stores::stand_in(&configs);
    let grants = stores.grant(&["cache".to_owned()]).unwrap();
    assert_eq!(grants.open("cache"), Ok(0));
    assert!(matches!(
        grants.open("default"),
        Err(KvError::AccessDenied(_))
    ));
    assert!(matches!(grants.open("nope"), Err(KvError::NoSuchStore(_))));
    let hostile = "x\n".repeat(1000);
    let Err(KvError::NoSuchStore(message)) = grants.open(&hostile) else {
        panic!("a hostile name opened a store")
    };
    assert!(!message.contains('\n') && message.len() < 200, "{message}");
    assert!(grants.get(1).is_none() && grants.get(u32::MAX).is_none());
    assert!(stores.grant(&["missing".to_owned()]).is_err());
}

#[test]
fn store_flags_are_parsed_and_hostile_ones_refused() {
    assert!(StoreConfig::parse_flag("a=memory").is_ok());
    assert!(StoreConfig::parse_flag("a=file:/tmp/x.db").is_ok());
    assert!(StoreConfig::parse_flag("a=redis://127.0.0.1:6379/0").is_ok());
    for bad in [
        "",
        "a",
        "=memory",
        "a b=memory",
        "a=",
        "a=file:",
        "a=postgres://x",
        "../a=memory",
        "a\n=memory",
    ] {
        assert!(
            StoreConfig::parse_flag(bad).is_err(),
            "{bad:?} was accepted"
        );
    }
}

#[tokio::test]
async fn the_memory_store_passes_the_conformance_script() {
    let store = MemoryStore::new(1 << 20);
    conformance(&store, Leeway { exact_pages: true }).await;
}
