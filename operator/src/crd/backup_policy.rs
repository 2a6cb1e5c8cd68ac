//! `BackupPolicy`: how tenants' spools and audit logs are backed up, kept and locked.

use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Condition;

/// A five-field cron expression: minute, hour, day of month, month and day of week, each `*`, a
/// number in its range, a range, a step (`*/15`) or a list of them.
fn cron_pattern() -> String {
    let field = |n: &str| {
        let item = format!(r"(\*|{n}(-{n})?)(/[0-9]+)?");
        format!("{item}(,{item})*")
    };
    let fields = [
        field("[0-5]?[0-9]"),
        field("([01]?[0-9]|2[0-3])"),
        field("(0?[1-9]|[12][0-9]|3[01])"),
        field("(0?[1-9]|1[0-2])"),
        field("[0-7]"),
    ];
    format!("^ *{} *$", fields.join(" +"))
}

/// Records of protected health information must be kept for years, so a BackupPolicy writes
/// every backup, encrypted to the listed age recipients, independently to two or more
/// S3-compatible destinations in distinct regions, with object lock, for at least six years
/// unless a waiver says why not. Cluster-scoped: the platform team owns it and tenants refer to
/// it by name.
#[derive(CustomResource, KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "mailwarden.io",
    doc = "Encrypted backups of the tenants that name this policy, written to two or more regions and locked for at least six years.",
    version = "v1alpha1",
    kind = "BackupPolicy",
    plural = "backuppolicies",
    shortname = "mwbp",
    category = "mailwarden",
    status = "BackupPolicyStatus",
    printcolumn(name = "Schedule", type_ = "string", json_path = ".spec.schedule"),
    printcolumn(
        name = "Retention-Years",
        type_ = "integer",
        json_path = ".spec.retentionYears"
    ),
    printcolumn(
        name = "Destinations",
        type_ = "integer",
        json_path = ".status.destinationCount"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.retentionYears >= 6 || has(self.retentionWaiver)").message("spec.retentionYears is below the six-year minimum for records of protected health information; set spec.retentionWaiver with the reason and approver to allow it"))]
pub struct BackupPolicySpec {
    /// When backups run, as a five-field cron expression in UTC, for example `0 2 * * *`.
    #[serde(default = "default_schedule")]
    #[schemars(length(max = 64))]
    #[x_kube(validation = Rule::new(format!("self.matches(r'{}')", cron_pattern())).message("spec.schedule must be a five-field cron expression such as '0 2 * * *': minute 0-59, hour 0-23, day of month 1-31, month 1-12, day of week 0-7, each *, a number, a range, a list or a step"))]
    pub schedule: String,

    /// Years each backup is kept and locked. At least 6 unless `retentionWaiver` is set.
    #[serde(default = "default_retention_years")]
    #[schemars(range(min = 1, max = 100))]
    pub retention_years: u32,

    /// An explicit, recorded exception to the six-year retention floor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_waiver: Option<RetentionWaiver>,

    /// Where backups are written: at least two destinations, each in a different region.
    #[schemars(length(min = 2, max = 8))]
    #[x_kube(validation = Rule::new("self.size() >= 2").message("spec.destinations needs at least two destinations, in different regions"))]
    #[x_kube(validation = Rule::new("self.all(d, self.exists_one(e, e.region == d.region))").message("spec.destinations must each be in a different region"))]
    #[x_kube(validation = Rule::new("self.all(d, self.exists_one(e, e.name == d.name))").message("spec.destinations names must be unique"))]
    pub destinations: Vec<BackupDestination>,

    /// Object-lock mode applied to every backup object: `Compliance` (nobody, not even the
    /// bucket owner, can shorten retention) or `Governance`.
    #[serde(default)]
    pub object_lock: ObjectLockMode,

    /// age public keys (`age1...`) backups are encrypted to. The matching private keys stay
    /// outside the cluster.
    #[schemars(length(min = 1, max = 16), inner(length(max = 128)))]
    #[x_kube(validation = Rule::new("self.all(r, r.matches('^age1[02-9ac-hj-np-z]{58}$'))").message("spec.recipients must be age public keys: 'age1' and 58 lower-case bech32 characters; never put a private key (AGE-SECRET-KEY-...) here"))]
    pub recipients: Vec<String>,
}

/// Why, and on whose authority, retention is below six years.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionWaiver {
    /// Why the shorter retention is acceptable.
    #[schemars(length(min = 10, max = 1024))]
    #[x_kube(validation = Rule::new("self.trim().size() >= 10").message("spec.retentionWaiver.reason must say why, in at least 10 characters besides spaces"))]
    pub reason: String,
    /// Who approved the exception.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self.trim().size() >= 1").message("spec.retentionWaiver.approvedBy must name who approved the exception"))]
    pub approved_by: String,
}

/// One S3-compatible bucket in one region.
#[derive(KubeSchema, Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupDestination {
    /// A short name for status and metrics.
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// The region the bucket lives in, such as `us-east-1`; two destinations may not share one.
    #[schemars(length(min = 1, max = 63))]
    #[x_kube(validation = Rule::new("self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("spec.destinations[].region must be a region name such as us-east-1: lower-case letters, digits and inner hyphens"))]
    pub region: String,
    /// HTTPS endpoint of the S3-compatible service.
    #[schemars(length(max = 512))]
    #[x_kube(validation = Rule::new("self.startsWith('https://') && isURL(self) && url(self).getHostname() != ''").message("spec.destinations[].endpoint must be an https:// URL with a host"))]
    pub endpoint: String,
    /// Bucket name; object lock must be enabled on it.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Secret in the operator's namespace with `accessKeyId` and `secretAccessKey` of a
    /// write-only identity.
    #[schemars(length(min = 1, max = 253))]
    pub credentials_secret: String,
}

#[derive(JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectLockMode {
    #[default]
    Compliance,
    Governance,
}

/// Backup health.
#[derive(KubeSchema, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicyStatus {
    #[serde(default)]
    #[x_kube(merge_strategy = kube::core::ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    #[serde(default)]
    pub observed_generation: i64,
    #[serde(default)]
    pub destination_count: u32,
}

fn default_schedule() -> String {
    "0 2 * * *".to_string()
}
fn default_retention_years() -> u32 {
    6
}
