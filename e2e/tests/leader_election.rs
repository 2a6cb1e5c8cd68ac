//! Two replicas of the operator never lead at once: one holds the Lease and reports ready, the
//! other waits; when the leader is killed, the other takes over once the lease runs out.

use std::process::{Child, Command, Stdio};

use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use mailwarden_e2e::{admin_get, env, wait_for};

const LEASE: &str = "e2e-election";

struct Replica {
    identity: String,
    admin: String,
    child: Child,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start(identity: &str) -> Replica {
    let admin = format!("127.0.0.1:{}", free_port());
    let log =
        std::fs::File::create(std::env::temp_dir().join(format!("mailwarden-{identity}.log")))
            .unwrap();
    let child = Command::new(env("MAILWARDEN_OPERATOR_BIN"))
        .args([
            "run",
            "--lease-namespace",
            "default",
            "--lease-name",
            LEASE,
            "--lease-seconds",
            "4",
        ])
        .args(["--identity", identity, "--admin-address", &admin])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("the operator binary starts");
    Replica {
        identity: identity.to_string(),
        admin,
        child,
    }
}

fn ready(replica: &Replica) -> bool {
    matches!(admin_get(&replica.admin, "/readyz"), Ok((200, _)))
}

#[tokio::test]
async fn only_one_replica_leads_and_the_other_takes_over() {
    let leases: Api<Lease> = Api::namespaced(mailwarden_e2e::client().await, "default");
    let first = start("e2e-replica-a");
    wait_for("replica a to lead", || async {
        Ok(ready(&first).then_some(()))
    })
    .await;
    let second = start("e2e-replica-b");
    wait_for("replica b to answer", || async {
        Ok(matches!(admin_get(&second.admin, "/healthz"), Ok((200, _))).then_some(()))
    })
    .await;

    // The follower stays unready while the leader renews, across several lease periods.
    for _ in 0..10 {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let (code, body) = admin_get(&second.admin, "/readyz").unwrap();
        assert_eq!((code, body.as_str()), (503, "waiting for the leader lease"));
        assert!(ready(&first));
    }
    let lease = leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(
        lease.holder_identity.as_deref(),
        Some(first.identity.as_str())
    );

    // Kill the leader without a chance to clean up; the follower takes over.
    drop(first);
    wait_for("replica b to take over", || async {
        Ok(ready(&second).then_some(()))
    })
    .await;
    let lease = leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(
        lease.holder_identity.as_deref(),
        Some(second.identity.as_str())
    );
    assert_eq!(lease.lease_transitions, Some(1));
    drop(second);
    leases.delete(LEASE, &Default::default()).await.unwrap();
}
