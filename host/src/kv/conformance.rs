//! One script of operations every backend must answer as the memory store
//! does: each backend's tests run it against a fresh, empty store.

use std::collections::BTreeSet;
use std::time::Duration;

use super::op::{KvError, Op, Output, PAGE};
use super::Backend;

/// What may differ between backends, by design.
#[derive(Clone, Copy)]
pub struct Leeway {
    /// Pages hold at most `limit` keys, in key order (memory, file); Redis
    /// pages as SCAN does: any order, up to PAGE keys, repeats possible.
    pub exact_pages: bool,
}

/// Runs the whole script; panics at the first answer that differs.
pub async fn conformance(store: &dyn Backend, leeway: Leeway) {
    let s = Script { store };
    s.basics().await;
    s.increments().await;
    s.compare_and_swap().await;
    s.expiry().await;
    s.listing(leeway).await;
    assert_eq!(store.ready().await, Ok(()));
}

struct Script<'a> {
    store: &'a dyn Backend,
}

fn set(key: &str, value: &[u8]) -> Op {
    Op::Set {
        key: key.into(),
        value: value.to_vec(),
        ttl: None,
    }
}

fn set_for(key: &str, value: &[u8], ms: u64) -> Op {
    Op::Set {
        key: key.into(),
        value: value.to_vec(),
        ttl: Some(Duration::from_millis(ms)),
    }
}

fn cas(key: &str, expected: Option<&[u8]>, value: &[u8], ttl: Option<u64>) -> Op {
    Op::CompareAndSwap {
        key: key.into(),
        expected: expected.map(<[u8]>::to_vec),
        value: value.to_vec(),
        ttl: ttl.map(Duration::from_millis),
    }
}

fn incr(key: &str, delta: i64) -> Op {
    Op::Increment {
        key: key.into(),
        delta,
    }
}

fn list(prefix: &str, cursor: Option<&str>, limit: usize) -> Op {
    Op::ListKeys {
        prefix: prefix.into(),
        cursor: cursor.map(str::to_owned),
        limit,
    }
}

fn invalid(result: &Result<Output, KvError>) -> bool {
    matches!(result, Err(KvError::Invalid(_)))
}

impl Script<'_> {
    async fn run(&self, op: Op) -> Result<Output, KvError> {
        self.store.run(op).await
    }

    async fn ok(&self, op: Op) {
        let shown = format!("{op:?}");
        assert_eq!(self.run(op).await, Ok(Output::Done), "{shown}");
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        match self.run(Op::Get { key: key.into() }).await {
            Ok(Output::Value(value)) => value,
            other => panic!("get {key}: {other:?}"),
        }
    }

    async fn exists(&self, key: &str) -> bool {
        match self.run(Op::Exists { key: key.into() }).await {
            Ok(Output::Exists(exists)) => exists,
            other => panic!("exists {key}: {other:?}"),
        }
    }

    async fn basics(&self) {
        assert_eq!(self.get("a").await, None);
        assert!(!self.exists("a").await);
        self.ok(set("a", b"1")).await;
        assert_eq!(self.get("a").await.as_deref(), Some(&b"1"[..]));
        assert!(self.exists("a").await);
        self.ok(set("a", b"2")).await;
        assert_eq!(self.get("a").await.as_deref(), Some(&b"2"[..]));
        self.ok(Op::Delete { key: "a".into() }).await;
        assert!(!self.exists("a").await);
        assert_eq!(self.get("a").await, None);
        // Deleting what is not there is not an error.
        self.ok(Op::Delete { key: "a".into() }).await;

        // Values are bytes, all of them; an empty value is a value.
        let every_byte: Vec<u8> = (0..=255).collect();
        self.ok(set("bin", &every_byte)).await;
        assert_eq!(self.get("bin").await, Some(every_byte));
        self.ok(set("empty", b"")).await;
        assert_eq!(self.get("empty").await, Some(Vec::new()));
        assert!(self.exists("empty").await);
        // Keys are any text.
        let odd = "ключ/🔑 with spaces\n*?[]\\";
        self.ok(set(odd, b"odd")).await;
        assert_eq!(self.get(odd).await.as_deref(), Some(&b"odd"[..]));
    }

    async fn increments(&self) {
        assert_eq!(self.run(incr("n", 1)).await, Ok(Output::Number(1)));
        assert_eq!(self.run(incr("n", 41)).await, Ok(Output::Number(42)));
        assert_eq!(self.run(incr("n", -50)).await, Ok(Output::Number(-8)));
        assert_eq!(self.get("n").await.as_deref(), Some(&b"-8"[..]));
        assert_eq!(self.run(incr("n", 0)).await, Ok(Output::Number(-8)));

        for not_a_number in [
            &b"twelve"[..],
            b" 5",
            b"5 ",
            b"5.0",
            b"",
            b"0x10",
            b"99999999999999999999",
            b"\xff",
        ] {
            self.ok(set("text", not_a_number)).await;
            let result = self.run(incr("text", 1)).await;
            assert!(invalid(&result), "{not_a_number:?}: {result:?}");
            assert_eq!(self.get("text").await.as_deref(), Some(not_a_number));
        }
        // What Rust reads as an integer, every store counts from.
        for (spelled, next) in [(&b"+5"[..], 6), (b"007", 8), (b"-0", 1), (b"-007", -6)] {
            self.ok(set("spelled", spelled)).await;
            assert_eq!(
                self.run(incr("spelled", 1)).await,
                Ok(Output::Number(next)),
                "{spelled:?}"
            );
            assert_eq!(
                self.get("spelled").await,
                Some(next.to_string().into_bytes())
            );
        }

        self.ok(set("max", i64::MAX.to_string().as_bytes())).await;
        assert!(invalid(&self.run(incr("max", 1)).await));
        assert_eq!(
            self.get("max").await,
            Some(i64::MAX.to_string().into_bytes())
        );
        self.ok(set("min", i64::MIN.to_string().as_bytes())).await;
        assert!(invalid(&self.run(incr("min", -1)).await));
        assert_eq!(
            self.run(incr("min", i64::MAX)).await,
            Ok(Output::Number(-1))
        );
        assert_eq!(
            self.run(incr("fresh", i64::MIN)).await,
            Ok(Output::Number(i64::MIN))
        );
    }

    async fn compare_and_swap(&self) {
        assert_eq!(
            self.run(cas("k", Some(b"x"), b"1", None)).await,
            Err(KvError::Conflict)
        );
        // An empty value is not the same as none.
        assert_eq!(
            self.run(cas("k", Some(b""), b"1", None)).await,
            Err(KvError::Conflict)
        );
        assert_eq!(self.get("k").await, None);
        self.ok(cas("k", None, b"1", None)).await;
        assert_eq!(
            self.run(cas("k", None, b"2", None)).await,
            Err(KvError::Conflict)
        );
        assert_eq!(
            self.run(cas("k", Some(b"2"), b"3", None)).await,
            Err(KvError::Conflict)
        );
        self.ok(cas("k", Some(b"1"), b"2", None)).await;
        assert_eq!(self.get("k").await.as_deref(), Some(&b"2"[..]));

        self.ok(set("e", b"")).await;
        assert_eq!(
            self.run(cas("e", None, b"1", None)).await,
            Err(KvError::Conflict)
        );
        self.ok(cas("e", Some(b""), b"1", None)).await;
        assert_eq!(self.get("e").await.as_deref(), Some(&b"1"[..]));

        let every_byte: Vec<u8> = (0..=255).rev().collect();
        self.ok(set("b", &every_byte)).await;
        self.ok(cas("b", Some(&every_byte), b"swapped", None)).await;
        assert_eq!(self.get("b").await.as_deref(), Some(&b"swapped"[..]));
    }

    /// Every TTL case at once, so the script sleeps once.
    async fn expiry(&self) {
        const TTL: u64 = 1000;
        self.ok(set_for("ttl:plain", b"v", TTL)).await;
        self.ok(set_for("ttl:counter", b"5", TTL)).await;
        // Increment keeps the TTL.
        assert_eq!(
            self.run(incr("ttl:counter", 1)).await,
            Ok(Output::Number(6))
        );
        // So does counting from a spelling only Rust reads.
        self.ok(set_for("ttl:spelled", b"+5", TTL)).await;
        assert_eq!(
            self.run(incr("ttl:spelled", 1)).await,
            Ok(Output::Number(6))
        );
        self.ok(cas("ttl:cas", None, b"v", Some(TTL))).await;
        // A write without a TTL clears the one there was.
        self.ok(set_for("ttl:cleared", b"v", TTL)).await;
        self.ok(set("ttl:cleared", b"w")).await;
        self.ok(set_for("ttl:cas-cleared", b"v", TTL)).await;
        self.ok(cas("ttl:cas-cleared", Some(b"v"), b"w", None))
            .await;
        self.ok(set_for("list:gone", b"v", TTL)).await;
        self.ok(set("list:kept", b"v")).await;

        assert_eq!(self.get("ttl:plain").await.as_deref(), Some(&b"v"[..]));
        assert!(self.exists("ttl:plain").await);
        assert_eq!(self.get("ttl:counter").await.as_deref(), Some(&b"6"[..]));
        let listed = self.all_keys("list:", 10).await;
        assert_eq!(listed, ["list:gone", "list:kept"].map(String::from).into());

        tokio::time::sleep(Duration::from_millis(TTL + 500)).await;

        assert_eq!(self.get("ttl:plain").await, None);
        assert!(!self.exists("ttl:plain").await);
        assert_eq!(self.get("ttl:counter").await, None);
        assert_eq!(self.get("ttl:spelled").await, None);
        // An expired counter counts from 0; an expired key is unset to CAS.
        assert_eq!(
            self.run(incr("ttl:counter", 1)).await,
            Ok(Output::Number(1))
        );
        assert_eq!(
            self.run(cas("ttl:cas", Some(b"v"), b"x", None)).await,
            Err(KvError::Conflict)
        );
        self.ok(cas("ttl:cas", None, b"again", None)).await;
        assert_eq!(self.get("ttl:cleared").await.as_deref(), Some(&b"w"[..]));
        assert_eq!(
            self.get("ttl:cas-cleared").await.as_deref(),
            Some(&b"w"[..])
        );
        let listed = self.all_keys("list:", 10).await;
        assert_eq!(listed, ["list:kept"].map(String::from).into());
    }

    /// Every key under `prefix`, page by page, each page checked.
    async fn pages(&self, prefix: &str, limit: usize, exact: bool) -> Vec<Vec<String>> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let answer = self.run(list(prefix, cursor.as_deref(), limit)).await;
            let Ok(Output::Keys { keys, cursor: next }) = answer else {
                panic!("list {prefix:?}: {answer:?}")
            };
            assert!(keys.len() <= if exact { limit } else { PAGE }, "{keys:?}");
            assert!(keys.iter().all(|k| k.starts_with(prefix)), "{keys:?}");
            if exact {
                assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
            }
            pages.push(keys);
            assert!(pages.len() < 10_000, "listing {prefix:?} never ends");
            match next {
                Some(next) => cursor = Some(next),
                None => return pages,
            }
        }
    }

    async fn all_keys(&self, prefix: &str, limit: usize) -> BTreeSet<String> {
        self.pages(prefix, limit, false)
            .await
            .into_iter()
            .flatten()
            .collect()
    }

    async fn listing(&self, leeway: Leeway) {
        let users: Vec<String> = (1..=5).map(|i| format!("user:{i}")).collect();
        for key in users
            .iter()
            .map(String::as_str)
            .chain(["user;", "use", "v", "a"])
        {
            self.ok(set(key, b"x")).await;
        }
        let pages = self.pages("user:", 2, leeway.exact_pages).await;
        let listed: Vec<String> = pages.iter().flatten().cloned().collect();
        let unique: BTreeSet<String> = listed.iter().cloned().collect();
        assert_eq!(unique, users.iter().cloned().collect(), "{pages:?}");
        if leeway.exact_pages {
            assert_eq!(listed, users);
            assert_eq!(pages.len(), 3, "{pages:?}");
        }
        // A full page of a prefix no key has: nothing, and no more.
        assert_eq!(
            self.run(list("nobody:", None, PAGE)).await,
            Ok(Output::Keys {
                keys: Vec::new(),
                cursor: None
            })
        );
        // The empty prefix is every key of the store.
        let everything = self.all_keys("", 3).await;
        assert!(everything.is_superset(&unique) && everything.contains("a"));

        // Cursors come back from modules: a bogus one gives a clean
        // refusal or a sane page, never keys outside the prefix.
        for bogus in [
            "a",
            "zzzz",
            "",
            "-1",
            "18446744073709551615",
            "99999999999999999999999",
            "user:3\0",
            "\u{10FFFF}",
        ] {
            let answer = self.run(list("user:", Some(bogus), 2)).await;
            match answer {
                Err(KvError::Invalid(_)) => {}
                Ok(Output::Keys { keys, .. }) => {
                    assert!(keys.len() <= PAGE && keys.iter().all(|k| k.starts_with("user:")));
                }
                other => panic!("cursor {bogus:?}: {other:?}"),
            }
        }
    }
}

/// A new current-thread runtime for one test.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
}

/// `store`, made outside any runtime, serves two in turn, the first gone
/// before the second starts: no backend may tie itself to the runtime that
/// touched it first.
pub fn serves_any_runtime(store: &std::sync::Arc<dyn Backend>) {
    let first = runtime();
    assert_eq!(
        first.block_on(store.run(incr("n", 1))),
        Ok(Output::Number(1))
    );
    drop(first);
    let second = std::thread::spawn({
        let store = store.clone();
        move || runtime().block_on(store.run(incr("n", 1)))
    });
    assert_eq!(
        second.join().expect("second runtime"),
        Ok(Output::Number(2))
    );
    assert_eq!(runtime().block_on(store.ready()), Ok(()));
}
