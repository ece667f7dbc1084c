//! What srs relies on of its patched sled (`vendor/sled/PATCHES.md`).

use std::sync::atomic::{AtomicBool, Ordering};

/// Keys of the batch: enough that applying it takes a while.
const BATCH_KEYS: u32 = 100_000;

/// Reads run while a batch is being applied (PATCHES.md, 4): one key of
/// the batch is read as written and, after that, another as not yet
/// written, by `get` and by an iterator. sled as released holds every read
/// of the process until the batch is whole (a global read-write lock), so
/// once a read has seen one of its keys every later read sees all of them.
#[test]
fn reads_run_while_a_batch_is_applied() {
    let db = sled::Config::new().temporary(true).open().unwrap();
    let tree = db.open_tree("t").unwrap();
    // The lock is only used once some batch has been applied.
    tree.apply_batch(sled::Batch::default()).unwrap();
    let (first, last) = (0u32.to_be_bytes(), (BATCH_KEYS - 1).to_be_bytes());
    let mut batch = sled::Batch::default();
    for i in 0..BATCH_KEYS {
        batch.insert(&i.to_be_bytes(), &[7u8; 16][..]);
    }
    let applied = AtomicBool::new(false);
    let (by_get, by_iterator) = std::thread::scope(|s| {
        s.spawn(|| {
            tree.apply_batch(batch).unwrap();
            applied.store(true, Ordering::SeqCst);
        });
        let got = |key: &[u8]| tree.get(key).unwrap().is_some();
        let iterated = |key: &[u8]| tree.range(key..=key).next().is_some();
        // A batch is applied in no particular order: read the two keys
        // both ways round.
        let half = |written: &dyn Fn(&[u8]) -> bool| {
            let (a, b, c) = (written(&first), written(&last), written(&first));
            (a && !b) || (b && !c)
        };
        let (mut by_get, mut by_iterator) = (false, false);
        while !applied.load(Ordering::SeqCst) && (!by_get || !by_iterator) {
            by_get |= half(&got);
            by_iterator |= half(&iterated);
        }
        (by_get, by_iterator)
    });
    // A read that waits for the batch holds up the loop until the batch
    // is whole: the loop then ends with that read's flag unset.
    assert!(
        by_get && by_iterator,
        "reads while the batch of {BATCH_KEYS} keys was applied: get {by_get}, iterator {by_iterator}"
    );
    assert_eq!(tree.len(), BATCH_KEYS as usize);
}
