//! No Docker engine runs here, so the Dockerfile's promises are checked as text against the
//! binary the tests exercise and the values the operator renders.

use std::path::Path;

use mailwarden_relay_config::{CONFIG_FILE_NAME, defaults};

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap()
}

/// Instructions of the final stage, as (keyword, arguments).
fn final_stage() -> Vec<(String, String)> {
    let text = dockerfile();
    let stage = text.rsplit("\nFROM ").next().unwrap().to_string();
    stage
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .skip(1)
        .map(|l| {
            let (keyword, args) = l.split_once(' ').unwrap();
            (keyword.to_string(), args.to_string())
        })
        .collect()
}

fn instruction(keyword: &str) -> String {
    let found: Vec<String> = final_stage()
        .into_iter()
        .filter(|(k, _)| k == keyword)
        .map(|(_, a)| a)
        .collect();
    assert_eq!(found.len(), 1, "exactly one {keyword} in the final stage");
    found[0].clone()
}

#[test]
fn the_image_runs_the_relay_binary_from_its_build_path() {
    let binary = Path::new(env!("CARGO_BIN_EXE_mailwarden-relay"));
    assert_eq!(binary.file_name().unwrap(), "mailwarden-relay");
    assert!(dockerfile().contains("RUN cargo build --release --locked -p mailwarden-relay\n"));
    assert_eq!(
        instruction("COPY"),
        "--from=build /src/target/release/mailwarden-relay /usr/local/bin/mailwarden-relay"
    );
    assert_eq!(
        instruction("ENTRYPOINT"),
        "[\"/usr/local/bin/mailwarden-relay\"]"
    );
    let config = format!("{}/{CONFIG_FILE_NAME}", defaults::CONFIG_DIR);
    assert_eq!(
        instruction("CMD"),
        format!("[\"run\", \"--config\", \"{config}\"]")
    );
}

#[test]
fn the_image_runs_as_the_non_root_relay_user() {
    let uid = defaults::RUN_AS_UID;
    assert_ne!(uid, 0);
    assert_eq!(instruction("USER"), format!("{uid}:{uid}"));
    let from = dockerfile()
        .lines()
        .rfind(|l| l.starts_with("FROM "))
        .unwrap()
        .to_string();
    assert_eq!(from, "FROM gcr.io/distroless/cc-debian12:nonroot");
}

#[test]
fn the_image_exposes_the_default_ports() {
    let ports = format!(
        "{} {} {}",
        defaults::SUBMISSIONS_PORT,
        defaults::SUBMISSION_PORT,
        defaults::ADMIN_PORT
    );
    assert_eq!(instruction("EXPOSE"), ports);
}
