use super::*;

fn envelope(id: &str) -> Envelope {
    Envelope {
        id: id.into(),
        sender: "billing@mail.st-olaf.example".into(),
        recipients: vec!["a@one.example".into(), "b@two.example".into()],
        received_at: 1_700_000_000,
        client: "billing-app".into(),
        require_tls: false,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mw-spool-{name}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    dir
}

#[test]
fn a_stored_message_loads_back_byte_for_byte() {
    let dir = temp_dir("roundtrip");
    let spool = Spool::open(&dir).unwrap();
    spool
        .store(&envelope("m1"), &[b"Subject: x\r\n", b"\r\n\n{}\r\n"])
        .unwrap();

    let reopened = Spool::open(&dir).unwrap();
    assert_eq!(reopened.message_ids().unwrap(), vec!["m1".to_string()]);
    let (loaded, message) = reopened.load("m1").unwrap();
    assert_eq!(loaded, envelope("m1"));
    assert_eq!(message, b"Subject: x\r\n\r\n\n{}\r\n");
}

#[test]
fn state_is_kept_and_pending_recipients_shrink() {
    let dir = temp_dir("state");
    let spool = Spool::open(&dir).unwrap();
    let env = envelope("m2");
    spool.store(&env, &[b"x\r\n"]).unwrap();
    assert_eq!(spool.state("m2").unwrap(), DeliveryState::default());

    let state = DeliveryState {
        delivered: vec!["a@one.example".into()],
        attempts: 1,
        next_attempt: 42,
        ..Default::default()
    };
    spool.save_state("m2", &state).unwrap();
    spool.save_state("m2", &state).unwrap();
    assert_eq!(spool.state("m2").unwrap(), state);
    assert_eq!(state.pending(&env), vec!["b@two.example"]);
}

#[test]
fn open_removes_half_written_and_stray_files() {
    let dir = temp_dir("recover");
    let spool = Spool::open(&dir).unwrap();
    fs::write(dir.join("tmp/m3.msg"), b"half").unwrap();
    fs::write(dir.join("queue/gone.state"), b"{}").unwrap();
    spool.store(&envelope("m4"), &[b"x\r\n"]).unwrap();

    let reopened = Spool::open(&dir).unwrap();
    assert!(!dir.join("tmp/m3.msg").exists());
    assert!(!dir.join("queue/gone.state").exists());
    assert_eq!(reopened.message_ids().unwrap(), vec!["m4".to_string()]);
}

#[test]
fn removed_messages_are_gone_with_their_state() {
    let dir = temp_dir("remove");
    let spool = Spool::open(&dir).unwrap();
    spool.store(&envelope("m5"), &[b"x\r\n"]).unwrap();
    spool.save_state("m5", &DeliveryState::default()).unwrap();
    spool.remove("m5").unwrap();
    assert!(spool.message_ids().unwrap().is_empty());
    assert!(!dir.join("queue/m5.state").exists());
}

#[test]
fn a_damaged_envelope_is_reported_with_its_path() {
    let dir = temp_dir("damaged");
    let spool = Spool::open(&dir).unwrap();
    fs::write(dir.join("queue/bad.msg"), b"not json\nbody").unwrap();
    let error = spool.load("bad").unwrap_err().to_string();
    assert!(
        error.starts_with(&format!(
            "spool file {} is damaged: bad envelope:",
            dir.join("queue/bad.msg").display()
        )),
        "{error}"
    );
}
