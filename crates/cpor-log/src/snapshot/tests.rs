//! State snapshots on a real data dir: used when they match the log,
//! ignored (and removed) when damaged, ahead of the log, of another
//! history, or left unfinished by a stop before their rename; a restored
//! state plus its tail equals the full fold.

use cpor_domain::command::Command;
use cpor_domain::state::State;

use cpor_testkit::actors::reviewer;

use super::*;
use crate::startup;
use crate::tests::history;
use crate::{keys, Log};

/// A data dir with the tests' history and a snapshot at its head, then
/// `comments` more events (one comment each). Returns the dir, the
/// snapshot's position and the live state at the end.
fn logged_with_snapshot(comments: usize) -> (tempfile::TempDir, u64, State) {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (_, c1, _) = history(&mut log, &mut state);
    let at = log.head().clone();
    write(dir.path(), &encode(&state, &at).unwrap()).unwrap();
    for i in 0..comments {
        let text = format!("note {i}");
        let comment = Command::Comment { claim_id: c1, text };
        crate::tests::run(
            &mut log,
            &mut state,
            reviewer(),
            comment,
            "2026-11-28T10:00:00Z",
        );
    }
    log.reader().flush_blocking().unwrap();
    (dir, at.position, state)
}

/// Runs start-up on the data dir as `cpor serve` does.
fn start(dir: &Path) -> startup::Startup {
    startup::run(&LogReader::open(dir).unwrap()).unwrap()
}

#[test]
fn a_start_folds_only_the_events_after_the_snapshot() {
    let (dir, at, live) = logged_with_snapshot(3);
    let started = start(dir.path());
    assert_eq!(started.snapshot, Some(at));
    assert_eq!(started.folded, 3, "only the three comments after it");
    assert_eq!(started.head.position, at + 3);
    assert_eq!(started.state, live, "snapshot plus tail is the live state");
    // The audit's start-up check reads no snapshot.
    let full = startup::run_from_log(&LogReader::open(dir.path()).unwrap()).unwrap();
    assert_eq!((full.snapshot, full.folded), (None, at + 3));
    assert_eq!(full.state, live);
}

#[test]
fn a_snapshot_at_every_position_restores_that_fold_and_its_tail_the_whole() {
    let (dir, _, live) = logged_with_snapshot(2);
    let reader = LogReader::open(dir.path()).unwrap();
    let mut state = State::new();
    for entry in reader.events_from(1) {
        let (position, bytes) = entry.unwrap();
        let decoded = crate::envelope::decode(&bytes).unwrap();
        state.evolve(&decoded.event, decoded.time).unwrap();
        let head = Head {
            position,
            hash: decoded.hash.clone(),
        };
        let (at, hash, restored) = decode(&encode(&state, &head).unwrap().bytes).unwrap();
        assert_eq!((at, &hash), (position, &head.hash));
        assert_eq!(restored, state, "the image of position {position}");
        let (whole, _) = reader.fold_onto(restored, position, None).unwrap();
        assert_eq!(whole, live, "restored at {position}, then its tail");
    }
}

/// The newest snapshot file of the data dir.
fn newest(dir: &Path) -> PathBuf {
    list(dir).first().expect("a snapshot").1.clone()
}

#[test]
fn a_damaged_snapshot_is_ignored_and_removed() {
    let (dir, _, live) = logged_with_snapshot(2);
    let path = newest(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let started = start(dir.path());
    assert_eq!(started.snapshot, None, "a flipped bit fails the checksum");
    assert_eq!(started.folded, started.head.position);
    assert_eq!(started.state, live);
    assert!(!path.exists(), "the damaged file is removed");

    // A truncated one too.
    let (dir, _, live) = logged_with_snapshot(1);
    let path = newest(dir.path());
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    let started = start(dir.path());
    assert_eq!((started.snapshot, &started.state), (None, &live));
}

#[test]
fn a_snapshot_ahead_of_a_cut_log_is_ignored() {
    let (dir, at, _) = logged_with_snapshot(0);
    // An unclean stop left the head record behind the last batch: start-up
    // cuts that batch, so the log ends before the snapshot.
    {
        let reader = LogReader::open(dir.path()).unwrap();
        let tree = reader.log().unwrap();
        tree.insert(keys::head("head_position"), &(at - 1).to_be_bytes())
            .unwrap();
        reader.flush_blocking().unwrap();
    }
    let started = start(dir.path());
    assert!(started.head.position < at, "the last batch was cut");
    assert_eq!(started.snapshot, None);
    assert_eq!(started.folded, started.head.position);
    let reader = LogReader::open(dir.path()).unwrap();
    assert_eq!(started.state, reader.fold_state(None).unwrap());
    assert!(list(dir.path()).is_empty(), "the snapshot ahead is removed");
}

#[test]
fn a_snapshot_of_another_history_is_ignored() {
    // Same positions, other events (other random ids): the hash differs.
    let (ours, _, live) = logged_with_snapshot(0);
    let (theirs, _, _) = logged_with_snapshot(0);
    let ours_file = newest(ours.path());
    std::fs::copy(newest(theirs.path()), &ours_file).unwrap();
    let started = start(ours.path());
    assert_eq!((started.snapshot, &started.state), (None, &live));
}

#[test]
fn a_stop_between_the_temp_write_and_the_rename_leaves_the_older_snapshot() {
    let (dir, older, live) = logged_with_snapshot(4);
    // What a kill -9 before the rename leaves: a temp file holding any
    // prefix of the new snapshot's bytes, beside the older snapshot.
    let reader = LogReader::open(dir.path()).unwrap();
    let head = startup::check_tail(&reader).unwrap();
    let newer = encode(&live, &head).unwrap();
    drop(reader);
    for cut in [0, newer.len() / 2, newer.len()] {
        let temp = snapshot_dir(dir.path()).join(format!("{}.tmp", file_name(head.position)));
        std::fs::write(&temp, &newer.bytes[..cut]).unwrap();
        let started = start(dir.path());
        assert_eq!(started.snapshot, Some(older), "prefix of {cut} bytes");
        assert_eq!(started.folded, 4);
        assert_eq!(started.state, live);
        assert!(!temp.exists(), "the unfinished file is removed");
    }
}

#[test]
fn the_snapshotter_writes_every_n_events_and_keeps_the_newest_two() {
    let dir = tempfile::tempdir().unwrap();
    let (mut log, mut state) = Log::open(dir.path()).unwrap();
    let (_, c1, _) = history(&mut log, &mut state);
    let mut snapshots = Snapshotter::new(log.reader(), 2);
    let mut taken = Vec::new();
    for i in 0..8 {
        let comment = Command::Comment {
            claim_id: c1,
            text: format!("note {i}"),
        };
        crate::tests::run(
            &mut log,
            &mut state,
            reviewer(),
            comment,
            "2026-11-28T10:00:00Z",
        );
        if snapshots.after_commit(&state, log.head()).is_some() {
            taken.push(log.head().position);
        }
        // One write at a time: wait for it, as a slow disk would not.
        if let Some(writing) = snapshots.writing.take() {
            writing.join().unwrap();
        }
    }
    let head = log.head().position;
    assert_eq!(taken[0], head - 7, "the first right away: none was there");
    assert_eq!(taken, [head - 7, head - 5, head - 3, head - 1]);
    let kept = || {
        list(dir.path())
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<u64>>()
    };
    assert_eq!(kept(), [head - 1, head - 3], "the newest two");
    snapshots.finish(Some(encode(&state, log.head()).unwrap()));
    assert_eq!(kept(), [head, head - 1], "the last one at the stop");
    log.reader().flush_blocking().unwrap();
    drop(log);
    let started = start(dir.path());
    assert_eq!((started.snapshot, started.folded), (Some(head), 0));
    assert_eq!(started.state, state);
}
