use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let unique = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("snow-cache-{name}-{}-{unique}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("creating a temporary directory");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A key of the shape the cache makes, numbered.
fn key(n: u8) -> String {
    format!("{:064x}-{:016x}", n, 0xabcu64)
}

fn hours_ago(hours: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(hours * 3600)
}

/// Writes `len` bytes at `path` and dates them `at`.
fn write_file(path: &Path, len: usize, at: SystemTime) {
    fs::write(path, vec![0u8; len]).expect("writing a file");
    fs::File::options()
        .write(true)
        .open(path)
        .and_then(|file| file.set_modified(at))
        .expect("dating a file");
}

fn entry(dir: &Path, n: u8, len: usize, at: SystemTime) -> PathBuf {
    let path = dir.join(format!("{}.cwasm", key(n)));
    write_file(&path, len, at);
    path
}

fn limits(max_bytes: u64) -> CacheLimits {
    CacheLimits {
        max_bytes,
        ..CacheLimits::default()
    }
}

fn engine() -> Engine {
    let mut config = wasmtime::Config::new();
    config.wasm_component_model(true);
    Engine::new(&config).expect("an engine")
}

/// The smallest component: the preamble of an empty one.
const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\x00\x01\x00";

#[test]
fn filling_past_the_size_bound_evicts_the_least_recently_used() {
    let dir = TempDir::new("size");
    let cache = ArtifactCache::open_with(&dir.0, limits(3_000)).expect("open");
    let paths: Vec<PathBuf> = (0..6)
        .map(|n| entry(&dir.0, n, 1_000, hours_ago(10 - u64::from(n))))
        .collect();

    let evicted = cache.evict().expect("evict");

    assert_eq!(
        evicted,
        Evicted {
            files: 3,
            bytes: 3_000
        }
    );
    for (n, path) in paths.iter().enumerate() {
        assert_eq!(path.exists(), n >= 3, "entry {n}");
    }
    assert_eq!(cache.evict().expect("evict again"), Evicted::default());
}

#[test]
fn entries_past_the_age_bound_are_evicted_under_the_size_bound() {
    let dir = TempDir::new("age");
    let limits = CacheLimits {
        max_bytes: u64::MAX,
        max_age: Duration::from_secs(24 * 3600),
    };
    let cache = ArtifactCache::open_with(&dir.0, limits).expect("open");
    let old = entry(&dir.0, 1, 10, hours_ago(25));
    let fresh = entry(&dir.0, 2, 10, hours_ago(23));
    let old_temporary = dir.0.join(format!("{}.123.tmp", key(3)));
    write_file(&old_temporary, 10, hours_ago(2));
    let new_temporary = dir.0.join(format!("{}.124.tmp", key(4)));
    write_file(&new_temporary, 10, SystemTime::now());

    assert_eq!(cache.evict().expect("evict").files, 2);
    assert!(!old.exists() && !old_temporary.exists());
    assert!(fresh.exists() && new_temporary.exists());
}

#[test]
fn opening_trims_a_cache_that_is_over_its_bound() {
    let dir = TempDir::new("open");
    let older = entry(&dir.0, 1, 600, hours_ago(2));
    let newer = entry(&dir.0, 2, 600, hours_ago(1));
    let _cache = ArtifactCache::open_with(&dir.0, limits(1_000)).expect("open");
    assert!(!older.exists());
    assert!(newer.exists());
}

#[test]
fn a_load_makes_its_entry_the_most_recently_used() {
    let dir = TempDir::new("lru");
    let engine = engine();
    let cache = ArtifactCache::open_with(&dir.0, limits(u64::MAX)).expect("open");
    let component = Component::new(&engine, EMPTY_COMPONENT).expect("compile");
    let key = cache.key(&engine, EMPTY_COMPONENT);
    cache.store(&key, &component).expect("store");
    let stored = cache.path(&key);
    let size = fs::metadata(&stored).expect("stored").len();
    fs::File::options()
        .write(true)
        .open(&stored)
        .and_then(|file| file.set_modified(hours_ago(5)))
        .expect("dating the entry");
    let others: Vec<PathBuf> = (1..=2)
        .map(|n| entry(&dir.0, n, size as usize, hours_ago(4 - u64::from(n))))
        .collect();

    assert!(cache.load(&engine, &key).is_some());
    // Room for two: the older of the others goes, not the loaded one.
    let cache = ArtifactCache {
        limits: limits(2 * size),
        ..cache
    };
    assert_eq!(cache.evict().expect("evict").files, 1);
    assert!(stored.exists());
    assert!(!others[0].exists());
    assert!(others[1].exists());
}

/// A cache in a fresh directory with the empty component stored in it.
fn stored(name: &str) -> (TempDir, Engine, ArtifactCache, Component, String) {
    let dir = TempDir::new(name);
    let engine = engine();
    let cache = ArtifactCache::open(&dir.0).expect("open");
    let component = Component::new(&engine, EMPTY_COMPONENT).expect("compile");
    let key = cache.key(&engine, EMPTY_COMPONENT);
    cache.store(&key, &component).expect("store");
    (dir, engine, cache, component, key)
}

#[test]
fn a_truncated_entry_is_a_miss_and_a_store_replaces_it() {
    let (_dir, engine, cache, component, key) = stored("truncated");
    let bytes = fs::read(cache.path(&key)).expect("read the entry");
    for cut in [
        0,
        4,
        trust::HEADER_LEN - 1,
        trust::HEADER_LEN,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        fs::write(cache.path(&key), &bytes[..cut]).expect("truncating");
        assert!(cache.load(&engine, &key).is_none(), "cut at {cut}");
    }
    fs::write(cache.path(&key), b"not a compiled component").expect("garbage");
    assert!(cache.load(&engine, &key).is_none());
    cache.store(&key, &component).expect("store");
    assert!(cache.load(&engine, &key).is_some());
}

#[test]
fn an_entry_with_a_flipped_byte_is_never_loaded() {
    let (_dir, engine, cache, component, key) = stored("flipped");
    let good = fs::read(cache.path(&key)).expect("read the entry");
    assert!(
        cache.load(&engine, &key).is_some(),
        "the stored entry loads"
    );
    // In the magic, in the tag, and across the serialized component.
    let mut positions = vec![0, 7, 8, trust::HEADER_LEN - 1];
    positions.extend((trust::HEADER_LEN..good.len()).step_by(997));
    positions.push(good.len() - 1);
    for at in positions {
        let mut bad = good.clone();
        bad[at] ^= 0x01;
        fs::write(cache.path(&key), &bad).expect("flipping");
        assert!(cache.load(&engine, &key).is_none(), "byte {at} flipped");
    }
    cache.store(&key, &component).expect("store");
    assert_eq!(fs::read(cache.path(&key)).expect("reread"), good);
    assert!(cache.load(&engine, &key).is_some());
}

#[test]
fn an_entry_copied_over_another_keys_file_is_never_loaded() {
    let (_dir, engine, cache, component, key) = stored("swap");
    // Another module's key: the same artifact sealed for it must not pass
    // as this one's, and this one's must not pass as it.
    let other = format!("{:064x}-{}", 7, &key[65..]);
    cache.store(&other, &component).expect("store the other");
    fs::copy(cache.path(&key), cache.path(&other)).expect("copying over");
    assert!(cache.load(&engine, &other).is_none());
    assert!(
        cache.load(&engine, &key).is_some(),
        "the original still loads"
    );
    cache.store(&other, &component).expect("store again");
    assert!(cache.load(&engine, &other).is_some());
}

#[test]
fn an_unsealed_artifact_is_never_loaded() {
    // What the cache wrote before entries were sealed: a bare serialized
    // component, which deserialize would accept.
    let (_dir, engine, cache, component, key) = stored("unsealed");
    let bare = component.serialize().expect("serialize");
    fs::write(cache.path(&key), &bare).expect("write a bare artifact");
    assert!(cache.load(&engine, &key).is_none());
    // Nor with a header of the right shape and a guessed tag.
    let mut forged = b"snowmac1".to_vec();
    forged.extend_from_slice(&[0u8; 32]);
    forged.extend_from_slice(&bare);
    fs::write(cache.path(&key), &forged).expect("write a forged entry");
    assert!(cache.load(&engine, &key).is_none());
}

#[test]
fn an_entry_sealed_with_another_key_file_is_never_loaded() {
    let (_dir, engine, cache, component, key) = stored("rekeyed");
    let other_dir = TempDir::new("rekeyed-other");
    let other = ArtifactCache::open(&other_dir.0).expect("open the other cache");
    other
        .store(&key, &component)
        .expect("store in the other cache");
    fs::copy(other.path(&key), cache.path(&key)).expect("copy across caches");
    assert!(cache.load(&engine, &key).is_none());
}

#[cfg(unix)]
#[test]
fn the_directory_and_key_file_are_created_private_and_reused() {
    use std::os::unix::fs::PermissionsExt;

    let parent = TempDir::new("created");
    let dir = parent.0.join("a").join("cache");
    let engine = engine();
    let cache = ArtifactCache::open(&dir).expect("open");
    let mode = |path: &Path| fs::metadata(path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700);
    let key_file = dir.join(trust::KEY_FILE);
    assert_eq!(mode(&key_file), 0o600);
    let secret = fs::read(&key_file).expect("read key");
    assert_eq!(secret.len(), trust::KEY_LEN);

    let component = Component::new(&engine, EMPTY_COMPONENT).expect("compile");
    let key = cache.key(&engine, EMPTY_COMPONENT);
    cache.store(&key, &component).expect("store");
    assert_eq!(mode(&cache.path(&key)), 0o600);

    // A second open (a restart) keeps the key, so the entry still loads.
    let again = ArtifactCache::open(&dir).expect("reopen");
    assert_eq!(fs::read(&key_file).expect("reread key"), secret);
    assert!(again.load(&engine, &key).is_some());
}

#[cfg(unix)]
#[test]
fn a_missing_key_file_is_made_anew_and_old_entries_recompile() {
    let (dir, engine, cache, component, key) = stored("missing-key");
    let key_file = dir.0.join(trust::KEY_FILE);
    let old = fs::read(&key_file).expect("read key");
    fs::remove_file(&key_file).expect("remove key");
    let cache2 = ArtifactCache::open(&dir.0).expect("reopen");
    let new = fs::read(&key_file).expect("new key");
    assert_eq!(new.len(), trust::KEY_LEN);
    assert_ne!(new, old);
    assert!(
        cache2.load(&engine, &key).is_none(),
        "sealed with the old key"
    );
    cache2.store(&key, &component).expect("store");
    assert!(cache2.load(&engine, &key).is_some());
    assert!(
        cache.load(&engine, &key).is_none(),
        "the old key no longer opens it"
    );
}

#[cfg(unix)]
#[test]
fn a_short_key_file_is_replaced() {
    use std::os::unix::fs::OpenOptionsExt;

    for len in [0usize, 5, trust::KEY_LEN - 1, trust::KEY_LEN + 1, 4096] {
        let dir = TempDir::new("short-key");
        let key_file = dir.0.join(trust::KEY_FILE);
        let mut file = fs::File::options()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key_file)
            .expect("create key file");
        std::io::Write::write_all(&mut file, &vec![1u8; len]).expect("write key file");
        drop(file);
        ArtifactCache::open(&dir.0).expect("open");
        let key = fs::read(&key_file).expect("read key");
        assert_eq!(key.len(), trust::KEY_LEN, "was {len} bytes");
        assert_ne!(key, vec![1u8; trust::KEY_LEN]);
    }
}

#[cfg(unix)]
#[test]
fn a_key_file_others_can_read_or_write_disables_the_cache() {
    use std::os::unix::fs::PermissionsExt;

    let (dir, ..) = stored("key-mode");
    let key_file = dir.0.join(trust::KEY_FILE);
    for mode in [0o640, 0o604, 0o620, 0o602, 0o666] {
        fs::set_permissions(&key_file, fs::Permissions::from_mode(mode)).expect("chmod");
        let err = ArtifactCache::open(&dir.0).err().expect("refused");
        let text = format!("{err:#}");
        assert!(text.contains(&format!("{mode:04o}")), "{text}");
        assert!(text.contains(trust::KEY_FILE), "{text}");
    }
    fs::set_permissions(&key_file, fs::Permissions::from_mode(0o400)).expect("chmod");
    ArtifactCache::open(&dir.0).expect("read-only for the owner is fine");
}

#[cfg(unix)]
#[test]
fn a_symlinked_or_non_file_key_is_refused() {
    use std::os::unix::fs::symlink;

    let outside = TempDir::new("key-outside");
    let dir = TempDir::new("key-link");
    let target = outside.0.join("key");
    fs::write(&target, [3u8; 32]).expect("write target");
    symlink(&target, dir.0.join(trust::KEY_FILE)).expect("symlink");
    let err = ArtifactCache::open(&dir.0).err().expect("refused");
    assert!(format!("{err:#}").contains("symlink"), "{err:#}");

    let dir = TempDir::new("key-dir");
    fs::create_dir(dir.0.join(trust::KEY_FILE)).expect("a directory as key");
    let err = ArtifactCache::open(&dir.0).err().expect("refused");
    assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
}

#[cfg(unix)]
#[test]
fn a_cache_directory_others_can_write_is_refused() {
    use std::os::unix::fs::PermissionsExt;

    for mode in [0o777, 0o770, 0o702, 0o1777] {
        let dir = TempDir::new("dir-mode");
        fs::set_permissions(&dir.0, fs::Permissions::from_mode(mode)).expect("chmod");
        let err = ArtifactCache::open(&dir.0).err().expect("refused");
        let text = format!("{err:#}");
        assert!(
            text.contains("cache directory") && text.contains("writable"),
            "{text}"
        );
        assert!(
            !dir.0.join(trust::KEY_FILE).exists(),
            "no key made in {mode:o}"
        );
    }
    // Readable by others is the operator's choice; the key file is not.
    let dir = TempDir::new("dir-mode-ok");
    fs::set_permissions(&dir.0, fs::Permissions::from_mode(0o755)).expect("chmod");
    ArtifactCache::open(&dir.0).expect("0755 is fine");
}

#[cfg(unix)]
#[test]
fn a_directory_or_key_of_another_user_is_refused() {
    // Only root can give a file away; elsewhere this has nothing to test.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    let nobody = 65534;
    let (dir, ..) = stored("owner");
    let key_file = dir.0.join(trust::KEY_FILE);
    std::os::unix::fs::lchown(&key_file, Some(nobody), None).expect("chown key");
    let err = ArtifactCache::open(&dir.0).err().expect("refused");
    assert!(format!("{err:#}").contains("uid 65534"), "{err:#}");

    let dir = TempDir::new("owner-dir");
    std::os::unix::fs::lchown(&dir.0, Some(nobody), None).expect("chown dir");
    let err = ArtifactCache::open(&dir.0).err().expect("refused");
    assert!(format!("{err:#}").contains("cache directory"), "{err:#}");
}

#[cfg(unix)]
#[test]
fn eviction_leaves_foreign_files_directories_and_symlinks_alone() {
    use std::os::unix::fs::symlink;

    let outside = TempDir::new("outside");
    let dir = TempDir::new("hostile");
    let cache = ArtifactCache::open_with(&dir.0, limits(0)).expect("open");
    let long_ago = hours_ago(24 * 365);

    // Files that only look like ours, or are not ours at all.
    let foreign: Vec<PathBuf> = [
        "notes.txt".to_owned(),
        "x.cwasm".to_owned(),
        format!("{}.cwasm.bak", key(1)),
        format!("{}.tmp", key(1)),
        format!("{}.12a.tmp", key(1)),
        format!("{}-{:016x}.cwasm", "g".repeat(64), 0),
        format!("{}.cwasm", key(1).to_uppercase().replace('-', "_")),
    ]
    .iter()
    .map(|name| {
        let path = dir.0.join(name);
        write_file(&path, 100, long_ago);
        path
    })
    .collect();

    // A directory named like an entry, with a file inside.
    let subdir = dir.0.join(format!("{}.cwasm", key(2)));
    fs::create_dir(&subdir).expect("subdirectory");
    let nested = entry(&subdir, 3, 100, long_ago);

    // Symlinks named like entries, to a file and a directory outside.
    let target_file = entry(&outside.0, 4, 100, long_ago);
    let file_link = dir.0.join(format!("{}.cwasm", key(4)));
    symlink(&target_file, &file_link).expect("symlink to a file");
    let target_dir = outside.0.join("tree");
    fs::create_dir(&target_dir).expect("outside directory");
    let inside_target = entry(&target_dir, 5, 100, long_ago);
    let dir_link = dir.0.join(format!("{}.cwasm", key(5)));
    symlink(&target_dir, &dir_link).expect("symlink to a directory");
    let dangling = dir.0.join(format!("{}.cwasm", key(6)));
    symlink(outside.0.join("missing"), &dangling).expect("dangling symlink");

    // One real entry, which a zero bound evicts.
    let ours = entry(&dir.0, 7, 100, long_ago);
    let key_file = dir.0.join(trust::KEY_FILE);

    let evicted = cache.evict().expect("evict");

    assert_eq!(
        evicted,
        Evicted {
            files: 1,
            bytes: 100
        }
    );
    assert!(!ours.exists());
    assert!(key_file.exists(), "the key is not an entry");
    for path in &foreign {
        assert!(path.exists(), "{}", path.display());
    }
    assert!(subdir.is_dir() && nested.exists());
    assert!(target_file.exists() && inside_target.exists());
    for link in [&file_link, &dir_link, &dangling] {
        let meta = fs::symlink_metadata(link).expect("the link is still there");
        assert!(meta.file_type().is_symlink(), "{}", link.display());
    }
}

#[cfg(unix)]
#[test]
fn a_symlinked_entry_is_not_loaded() {
    use std::os::unix::fs::symlink;

    let outside = TempDir::new("outside-entry");
    let (_dir, engine, cache, _component, key) = stored("symlinked");
    // A good entry, moved out and linked back: still refused.
    let target = outside.0.join("elsewhere.cwasm");
    fs::rename(cache.path(&key), &target).expect("move the entry out");
    symlink(&target, cache.path(&key)).expect("symlink");
    assert!(cache.load(&engine, &key).is_none());
}

#[test]
fn names_are_recognised_only_in_the_shapes_the_cache_writes() {
    let k = key(9);
    assert_eq!(kind_of(&format!("{k}.cwasm")), Some(Kind::Entry));
    assert_eq!(kind_of(&format!("{k}.42.tmp")), Some(Kind::Temporary));
    for name in [
        String::new(),
        ".cwasm".to_owned(),
        format!("{k}.tmp"),
        format!("{k}..tmp"),
        format!("{k}.4 2.tmp"),
        format!("../{k}.cwasm"),
        format!("{k}/.cwasm"),
        format!("{k}x.cwasm"),
        format!("{}.cwasm", &k[1..]),
        format!("{}-{}.cwasm", &k[..64], &k[64..]),
    ] {
        assert_eq!(kind_of(&name), None, "{name:?}");
    }
}

#[test]
fn default_limits_are_documented_values() {
    let limits = CacheLimits::default();
    assert_eq!(limits.max_bytes, 512 * 1024 * 1024);
    assert_eq!(limits.max_age, Duration::from_secs(30 * 24 * 3600));
}

#[test]
fn derived_keys_separate_their_inputs_and_are_evictable() {
    let dir = TempDir::new("derived");
    let cache = ArtifactCache::open(&dir.0).expect("open");
    let engine = engine();
    let wasm = b"\0asm module";
    let k =
        |kind: &str, wasm: &[u8], inputs: &[&[u8]]| cache.derived_key(&engine, kind, wasm, inputs);
    let base = k("preinit-1", wasm, &[b"A\0x\0"]);
    assert_eq!(base, k("preinit-1", wasm, &[b"A\0x\0"]), "stable");
    assert!(is_key(&base), "{base}: eviction must recognise it");
    assert_ne!(base, cache.key(&engine, wasm), "not the plain build's key");
    assert_ne!(base, k("preinit-2", wasm, &[b"A\0x\0"]));
    assert_ne!(base, k("preinit-1", b"\0asm other", &[b"A\0x\0"]));
    assert_ne!(base, k("preinit-1", wasm, &[b"A\0y\0"]));
    // Moving bytes between parts changes the key: every part is
    // length-prefixed.
    assert_ne!(
        k("preinit-1", wasm, &[b"ab", b"c"]),
        k("preinit-1", wasm, &[b"a", b"bc"])
    );
}
