//! The backup file format: a round trip, and every kind of damage refused
//! before anything is written.

use std::path::{Path, PathBuf};

use srs_domain::actor::Actor;
use srs_domain::log::{EventStore, ExpectedVersion, NewEvent};
use srs_domain::model::DomainEvent;
use srs_replay::DataDir;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::format::{BackupError, RecordReader, Wrapping, WrappingKey, MAGIC, TAG_CHUNK};
use super::restore::{restore, Secret};
use super::write::write_backup;
use crate::content::ContentStore;

struct Fixture {
    _dir: tempfile::TempDir,
    data: PathBuf,
    backup: PathBuf,
    key_bytes: Vec<Vec<u8>>,
    recording: Uuid,
    chunks: Vec<Vec<u8>>,
}

fn passphrase() -> Secret {
    Secret::Passphrase(Zeroizing::new(b"correct horse battery staple".to_vec()))
}

/// A data directory with one recording of three chunks, backed up.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let recording = Uuid::new_v4();
    let site = Uuid::new_v4();
    let chunks: Vec<Vec<u8>> = (0..3u8)
        .map(|i| (0..5000).map(|n| (n as u8).wrapping_mul(7) ^ i).collect())
        .collect();
    let data_dir = DataDir::open_or_create(&data).unwrap();
    let content = ContentStore::open(&data).unwrap();
    for (seq, plain) in chunks.iter().enumerate() {
        let written = content.write_chunk(recording, seq as u64, plain).unwrap();
        let event = DomainEvent::ContentChunkStored {
            recording_id: recording,
            site_id: site,
            seq: seq as u64,
            size: written.size,
            sha256: written.sha256,
        };
        let _ = EventStore::append(
            &data_dir.store,
            &format!("recording-{recording}"),
            ExpectedVersion::Any,
            vec![NewEvent::new(Actor::system("test"), event)],
        )
        .await
        .unwrap();
    }
    let key_bytes =
        vec![std::fs::read(data.join("content/keys").join(format!("{recording}.key"))).unwrap()];
    let backup = dir.path().join("backup.srsbak");
    let wrapping = Wrapping::new_argon2id(8 * 1024);
    let key = wrapping.derive(b"correct horse battery staple").unwrap();
    let out = std::fs::File::create(&backup).unwrap();
    let (_, summary) = write_backup(&data_dir.store, &content, None, &wrapping, &key, out).unwrap();
    assert_eq!((summary.keys, summary.chunks), (1, 3));
    drop(data_dir);
    Fixture {
        _dir: dir,
        data,
        backup,
        key_bytes,
        recording,
        chunks,
    }
}

fn is_empty_or_absent(path: &Path) -> bool {
    std::fs::read_dir(path).map_or(true, |mut d| d.next().is_none())
}

#[tokio::test]
async fn a_backup_round_trips_and_holds_no_key_in_plain() {
    let f = fixture().await;
    let bytes = std::fs::read(&f.backup).unwrap();
    assert!(bytes.starts_with(MAGIC));
    for key in &f.key_bytes {
        assert!(!bytes.windows(key.len()).any(|w| w == key.as_slice()));
    }
    let target = f.data.with_file_name("restored");
    let summary = restore(&f.backup, &target, passphrase()).unwrap();
    assert_eq!((summary.keys, summary.chunks, summary.events), (1, 3, 3));
    let content = ContentStore::open(&target).unwrap();
    let log = DataDir::open(&target).unwrap();
    let stored = log.store.read_raw(1, 10).unwrap();
    for (seq, plain) in f.chunks.iter().enumerate() {
        let event: DomainEvent =
            srs_domain::log::decode_payload(stored[seq].position, &stored[seq].payload).unwrap();
        let DomainEvent::ContentChunkStored { sha256, .. } = event else {
            panic!("{event:?}")
        };
        assert_eq!(
            &content
                .read_chunk(f.recording, seq as u64, &sha256)
                .unwrap(),
            plain
        );
    }
}

fn refused(f: &Fixture, file: &Path, secret: Secret) -> BackupError {
    let target = f.data.with_file_name("target");
    let error = restore(file, &target, secret).unwrap_err();
    assert!(is_empty_or_absent(&target), "nothing written: {error}");
    error
}

#[tokio::test]
async fn a_truncated_backup_is_refused_wherever_it_is_cut() {
    let f = fixture().await;
    let bytes = std::fs::read(&f.backup).unwrap();
    let cut = f.backup.with_extension("cut");
    for len in [
        0,
        4,
        MAGIC.len(),
        MAGIC.len() + 3,
        bytes.len() / 2,
        bytes.len() - 1,
    ] {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let error = refused(&f, &cut, passphrase());
        assert!(matches!(error, BackupError::BadFile(_)), "{len}: {error}");
    }
    // Cut exactly before the trailer: no trailer.
    let mut reader = RecordReader::new(&bytes[..]).unwrap();
    let mut offset = MAGIC.len();
    while let Some((tag, body)) = reader.next().unwrap() {
        if tag == super::format::TAG_TRAILER {
            break;
        }
        offset += 5 + body.len();
    }
    std::fs::write(&cut, &bytes[..offset]).unwrap();
    let error = refused(&f, &cut, passphrase());
    assert!(error.to_string().contains("trailer"), "{error}");
}

#[tokio::test]
async fn a_trailer_that_does_not_match_is_refused() {
    let f = fixture().await;
    let mut bytes = std::fs::read(&f.backup).unwrap();
    // The trailer is the last record: change one digit of its checksum.
    let pattern = b"\"sha256\":\"";
    let at = bytes
        .windows(pattern.len())
        .rposition(|w| w == pattern)
        .unwrap()
        + pattern.len();
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    let bad = f.backup.with_extension("bad");
    std::fs::write(&bad, &bytes).unwrap();
    let error = refused(&f, &bad, passphrase());
    assert!(error.to_string().contains("checksum"), "{error}");
    // Bytes after the trailer.
    let mut bytes = std::fs::read(&f.backup).unwrap();
    bytes.extend_from_slice(b"T\0\0\0\0");
    std::fs::write(&bad, &bytes).unwrap();
    assert!(matches!(
        refused(&f, &bad, passphrase()),
        BackupError::BadFile(_)
    ));
}

#[tokio::test]
async fn a_flipped_chunk_byte_or_a_wrong_passphrase_writes_nothing() {
    let f = fixture().await;
    let mut bytes = std::fs::read(&f.backup).unwrap();
    // Find the first chunk record and flip a byte of its stored file.
    let mut reader = RecordReader::new(&bytes[..]).unwrap();
    let mut offset = MAGIC.len();
    loop {
        let (tag, body) = reader.next().unwrap().unwrap();
        if tag == TAG_CHUNK {
            offset += 5 + body.len() - 10;
            break;
        }
        offset += 5 + body.len();
    }
    bytes[offset] ^= 0x01;
    let bad = f.backup.with_extension("flipped");
    std::fs::write(&bad, &bytes).unwrap();
    let error = refused(&f, &bad, passphrase());
    assert!(error.to_string().contains("does not hash"), "{error}");

    let wrong = Secret::Passphrase(Zeroizing::new(b"wrong".to_vec()));
    assert!(matches!(
        refused(&f, &f.backup, wrong),
        BackupError::WrongKey
    ));
    let key_file = Secret::Key(WrappingKey::from_bytes(&[7u8; 32]).unwrap());
    assert!(matches!(
        refused(&f, &f.backup, key_file),
        BackupError::Invalid(_)
    ));
}

#[tokio::test]
async fn a_non_empty_target_is_refused() {
    let f = fixture().await;
    let target = f.data.with_file_name("occupied");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("something"), b"x").unwrap();
    let error = restore(&f.backup, &target, passphrase()).unwrap_err();
    assert!(matches!(error, BackupError::NotEmpty(_)), "{error}");
    assert_eq!(std::fs::read_dir(&target).unwrap().count(), 1);
}

#[tokio::test]
async fn a_well_formed_file_missing_a_chunk_the_log_records_is_refused() {
    use super::format::{RecordWriter, Trailer, TAG_TRAILER};
    let f = fixture().await;
    let bytes = std::fs::read(&f.backup).unwrap();
    let mut reader = RecordReader::new(&bytes[..]).unwrap();
    let mut writer = RecordWriter::new(Vec::new()).unwrap();
    let mut trailer: Option<Trailer> = None;
    let mut dropped = false;
    while let Some((tag, body)) = reader.next().unwrap() {
        match tag {
            TAG_CHUNK if !dropped => dropped = true,
            TAG_TRAILER => trailer = Some(serde_json::from_slice(&body).unwrap()),
            _ => writer.record(tag, &body).unwrap(),
        }
    }
    let mut trailer = trailer.unwrap();
    trailer.chunks -= 1;
    trailer.chunk_bytes = 0;
    let (rewritten, _) = writer.finish(trailer).unwrap();
    let bad = f.backup.with_extension("short");
    std::fs::write(&bad, rewritten).unwrap();
    let error = refused(&f, &bad, passphrase());
    assert!(
        error
            .to_string()
            .contains("recorded in its log but not in the file"),
        "{error}"
    );
}

#[test]
fn kdf_parameters_are_bounded() {
    let huge = Wrapping::Argon2id {
        salt: "00".repeat(16),
        m_cost_kib: u32::MAX,
        t_cost: 3,
        p_cost: 1,
    };
    assert!(huge.validate().is_err());
    assert!(matches!(huge.derive(b"x"), Err(BackupError::BadFile(_))));
    let short_salt = Wrapping::Argon2id {
        salt: "00".into(),
        m_cost_kib: 8 * 1024,
        t_cost: 3,
        p_cost: 1,
    };
    assert!(short_salt.validate().is_err());
    assert!(Wrapping::new_argon2id(8 * 1024).validate().is_ok());
    assert!(Wrapping::KeyFile.validate().is_ok());
}
