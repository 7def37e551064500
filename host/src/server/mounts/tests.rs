//! Which mount serves a path, and switching to a newly published table.

use std::time::Duration;

use super::*;
use crate::config::Isolation;
use crate::deploy::MountTable;
use crate::server::test_support::{client, dispatch_limits, hello, mount};

fn worker(registry: &Arc<Registry>) -> Mounts {
    let limits = dispatch_limits(16, Duration::from_secs(60));
    Mounts::new(registry.clone(), Metrics::new(), limits, client()).expect("mounts")
}

fn served_by(mounts: &Mounts, path: &str) -> Option<String> {
    mounts
        .route(path)
        .map(|(mount, _)| mount.config.name.clone())
}

#[test]
fn the_longest_prefix_ending_at_a_segment_boundary_wins() {
    let registry = Arc::new(Registry::default());
    let module = hello(Isolation::Instance);
    registry.publish(MountTable::new(vec![
        mount("root", "/", module.clone()),
        mount("api", "/api", module.clone()),
        mount("v2", "/api/v2/", module),
    ]));
    let mounts = worker(&registry);
    for (path, expected) in [
        ("/", Some("root")),
        ("/home/", Some("root")),
        ("/api", Some("api")),
        ("/api/", Some("api")),
        ("/api/x", Some("api")),
        ("/apix", Some("root")),
        ("/api/v2", Some("api")),
        ("/api/v2/", Some("v2")),
        ("/api/v2/deep/er", Some("v2")),
        ("/API/x", Some("root")),
        ("*", None),
        ("", None),
    ] {
        assert_eq!(served_by(&mounts, path).as_deref(), expected, "{path:?}");
    }
}

#[test]
fn without_a_root_mount_other_paths_are_not_served() {
    let registry = Arc::new(Registry::default());
    registry.publish(MountTable::new(vec![mount(
        "api",
        "/api",
        hello(Isolation::Instance),
    )]));
    let mounts = worker(&registry);
    assert_eq!(served_by(&mounts, "/api/x").as_deref(), Some("api"));
    for path in ["/", "/ap", "/apii", "/x/api", "//api"] {
        assert_eq!(served_by(&mounts, path), None, "{path:?}");
    }
}

#[test]
fn a_published_table_is_seen_on_the_next_request() {
    let registry = Arc::new(Registry::default());
    let kept = hello(Isolation::Instance);
    registry.publish(MountTable::new(vec![mount("a", "/a", kept.clone())]));
    let mounts = worker(&registry);
    let (_, before) = mounts.route("/a").expect("mounted");
    assert_eq!(served_by(&mounts, "/b"), None);

    registry.publish(MountTable::new(vec![
        mount("a", "/a", kept),
        mount("b", "/b", hello(Isolation::Instance)),
    ]));
    assert_eq!(served_by(&mounts, "/b").as_deref(), Some("b"));
    // The version still mounted keeps its dispatcher, and so its instance.
    let (_, after) = mounts.route("/a").expect("still mounted");
    assert!(before.same(&after));

    registry.publish(MountTable::new(Vec::new()));
    assert_eq!(served_by(&mounts, "/a"), None);
}

#[test]
fn while_one_worker_builds_the_new_table_the_others_serve_the_old_one() {
    let registry = Arc::new(Registry::default());
    registry.publish(MountTable::new(vec![mount(
        "a",
        "/",
        hello(Isolation::Instance),
    )]));
    let mounts = worker(&registry);
    registry.publish(MountTable::new(vec![mount(
        "b",
        "/",
        hello(Isolation::Instance),
    )]));
    let building = mounts.refreshing.lock().expect("the lock");
    assert_eq!(served_by(&mounts, "/x").as_deref(), Some("a"));
    drop(building);
    assert_eq!(served_by(&mounts, "/x").as_deref(), Some("b"));
}
