use super::*;

fn temp_log(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("mw-audit-{name}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

fn write_three(path: &Path) {
    let log = AuditLog::open(path, "st-olaf").unwrap();
    log.record(&Event::AuthFailure {
        peer: "10.0.0.1:1234".into(),
        reason: "no client certificate",
    })
    .unwrap();
    log.record(&Event::AuthSuccess {
        peer: "10.0.0.2:5678".into(),
        client: "billing",
        tls_version: "TLSv1_3",
        tls_suite: "TLS13_AES_256_GCM_SHA384",
    })
    .unwrap();
    log.record(&Event::MessageBounced {
        id: "m1",
        recipients: 2,
        dsn: "m2",
    })
    .unwrap();
}

#[test]
fn a_written_chain_verifies_and_continues_after_reopen() {
    let path = temp_log("chain");
    write_three(&path);
    assert_eq!(verify(&path).unwrap().0, 3);
    write_three(&path);
    assert_eq!(verify(&path).unwrap().0, 6);

    let text = std::fs::read_to_string(&path).unwrap();
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["tenant"], "st-olaf");
    assert_eq!(first["event"], "auth-failure");
    assert_eq!(first["peer"], "10.0.0.1:1234");
    assert_eq!(first["prev"], GENESIS);
}

#[test]
fn editing_a_line_is_reported_at_that_line() {
    let path = temp_log("edit");
    write_three(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replacen("billing", "payroll", 1)).unwrap();
    let error = verify(&path).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "audit log {} line 2: hash does not match the line's content",
            path.display()
        )
    );
}

#[test]
fn removing_a_line_is_reported_at_the_next_line() {
    let path = temp_log("remove");
    write_three(&path);
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let error = verify(&path).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "audit log {} line 2: prev does not match the hash of the line before",
            path.display()
        )
    );
}

#[test]
fn opening_a_broken_log_is_refused() {
    let path = temp_log("refuse");
    write_three(&path);
    std::fs::write(&path, "garbage\n").unwrap();
    assert!(matches!(
        AuditLog::open(&path, "st-olaf"),
        Err(AuditError::Broken { line: 1, .. })
    ));
}

#[test]
fn a_torn_last_line_is_cut_and_recorded() {
    let path = temp_log("torn");
    write_three(&path);
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("{\"seq\":4,\"ts\"");
    std::fs::write(&path, text).unwrap();

    let log = AuditLog::open(&path, "st-olaf").unwrap();
    drop(log);
    assert_eq!(verify(&path).unwrap().0, 4);
    let last = std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .last()
        .unwrap()
        .to_string();
    let last: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["event"], "torn-line-dropped");
    assert_eq!(last["bytes"], 13);
}
