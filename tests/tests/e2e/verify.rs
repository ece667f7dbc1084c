//! `srs verify` against a data directory written by a real `srs serve`:
//! exit 2 while the server holds it, 0 when intact, 1 with the first broken
//! position after a record is rewritten.

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

#[tokio::test]
async fn verify_reports_intact_busy_and_tampered_directories() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let srs = Srs::start(&data).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    for n in 0..3 {
        create_site(&admin, &format!("site {n}")).await;
    }

    let (code, _, stderr) = run_srs(&["verify", "--data", data_arg], &[]);
    assert_eq!(code, Some(2), "a directory held by srs serve: {stderr}");
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(srs.stop().success());

    let (code, stdout, _) = run_srs(&["verify", "--data", data_arg], &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("intact"), "{stdout}");

    // Rewrite one byte of the record at position 2 through sled.
    {
        let db = sled::open(&data).unwrap();
        let tree = db.open_tree("log").unwrap();
        let key = [b'e', 0, 0, 0, 0, 0, 0, 0, 2];
        let mut bytes = tree.get(key).unwrap().unwrap().to_vec();
        let at = bytes.len() - 40;
        bytes[at] ^= 0x20;
        tree.insert(key, bytes).unwrap();
        db.flush().unwrap();
    }
    let (code, stdout, _) = run_srs(&["verify", "--data", data_arg], &[]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("broken at position 2"), "{stdout}");

    let (code, _, _) = run_srs(
        &[
            "verify",
            "--data",
            dir.path().join("none").to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, Some(2));
}
