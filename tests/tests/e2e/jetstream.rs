//! `srs serve --log-url` and `srs verify --log-url` against a real
//! three-node nats-server cluster: the log lives in the JetStream stream,
//! not in the data directory, so a server on an empty data directory
//! serves what another one wrote, and a data directory built from
//! another log is refused.

use serde_json::json;
use srs_log_jetstream::testing::Cluster;

use crate::common::fixtures::*;
use crate::common::server::run_srs;
use crate::common::{Client, Srs};

#[tokio::test]
async fn the_log_on_a_jetstream_cluster_is_served_verified_and_kept() {
    let cluster = Cluster::start();
    let urls = cluster.urls();
    let env = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-e2e"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");

    let srs = Srs::start_with_env(&first, &env).await;
    let token = srs.admin_token();
    let admin = Client::new(&srs, Some(&token));
    for n in 0..3 {
        create_site(&admin, &format!("site {n}")).await;
    }
    let head = log_head(&admin).await;
    assert!(head >= 3, "{head}");

    // The stream's chain checks out, also while the server runs.
    let (code, stdout, stderr) = run_srs(
        &["verify", "--log-url", &urls, "--log-stream", "srs-e2e"],
        &[],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.starts_with(&format!("intact: {head} events checked")),
        "{stdout}"
    );
    assert!(srs.stop().success());
    // The data directory's own log holds nothing.
    let (code, stdout, _) = run_srs(&["verify", "--data", first.to_str().unwrap()], &[]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.starts_with("intact: 0 events checked"), "{stdout}");

    // A server on an empty data directory serves the same log: the read
    // models are rebuilt from the stream, the first admin's token works.
    let second = dir.path().join("second");
    let srs = Srs::start_with_env(&second, &env).await;
    let admin = Client::new(&srs, Some(&token));
    let sites = admin.data("{ sites { name } }", json!({})).await;
    let mut names: Vec<&str> = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, vec!["site 0", "site 1", "site 2"]);
    create_site(&admin, "site 3").await;
    assert!(log_head(&admin).await > head);
    assert!(srs.stop().success());

    // A data directory is bound to the log its read models come from:
    // another stream, or an embedded log, is refused (exit 2).
    let first_arg = first.to_str().unwrap();
    let serve = ["serve", "--data", first_arg, "--listen", "127.0.0.1:0"];
    let other = [
        ("SRS_LOG_URL", urls.as_str()),
        ("SRS_LOG_STREAM", "srs-other"),
    ];
    let (code, _, stderr) = run_srs(&serve, &other);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("was built from the log `srs-e2e"),
        "{stderr}"
    );
    let embedded = dir.path().join("embedded");
    let srs = Srs::start(&embedded).await;
    let admin = Client::new(&srs, Some(&srs.admin_token()));
    create_site(&admin, "embedded").await;
    assert!(srs.stop().success());
    let embedded_arg = embedded.to_str().unwrap();
    let (code, _, stderr) = run_srs(
        &["serve", "--data", embedded_arg, "--listen", "127.0.0.1:0"],
        &env,
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("holds an embedded log"), "{stderr}");

    // A cluster that is not there: a clear error, exit 2.
    let (code, _, stderr) = run_srs(
        &[
            "verify",
            "--log-url",
            "nats://127.0.0.1:1",
            "--log-stream",
            "srs-e2e",
        ],
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
}
