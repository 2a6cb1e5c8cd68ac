//! Cloudflare through the `cloudflare` crate's async client. One zone id per domain, so a
//! token scoped to that zone's DNS is enough. Records the operator creates carry a comment
//! naming their owner; only records with that exact comment are updated or deleted.

mod endpoints;

use std::time::Duration;

use cloudflare::framework::client::ClientConfig;
use cloudflare::framework::client::async_api::Client;
use cloudflare::framework::endpoint::spec::EndpointSpec;
use cloudflare::framework::response::{ApiErrors, ApiFailure, ResponseConverter};
use cloudflare::framework::{Environment, auth::Credentials};

use self::endpoints::{
    CreateRecord, DeleteRecord, ListQuery, ListRecords, PageInfo, RecordBody, ReplaceRecord,
};
use super::provider::{DnsProvider, ExistingRecord, Ownership, ProviderError};
use super::record::{DnsRecord, RecordType, normalize_txt_presentation, quoted_character_strings};

const PROVIDER: &str = "cloudflare";
const PAGE_SIZE: u32 = 100;

/// How often and how patiently rate-limited and failed requests are retried.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub first_delay: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            attempts: 5,
            first_delay: Duration::from_millis(500),
        }
    }
}

pub struct CloudflareProvider {
    client: Client,
    zone_id: String,
    owner_comment: String,
    ttl: u32,
    retry: Retry,
}

impl CloudflareProvider {
    /// `api_base` is `None` for Cloudflare itself, or another base URL serving the same API.
    /// `owner` identifies the SendingDomain (`namespace/name`) in the ownership comment.
    pub fn new(
        token: String,
        zone_id: String,
        owner: &str,
        api_base: Option<&str>,
        retry: Retry,
    ) -> Result<Self, ProviderError> {
        let environment = match api_base {
            Some(base) if base.ends_with('/') => Environment::Custom(base.to_string()),
            Some(base) => Environment::Custom(format!("{base}/")),
            None => Environment::Production,
        };
        let credentials = Credentials::UserAuthToken { token };
        let client =
            Client::new(credentials, ClientConfig::default(), environment).map_err(|e| {
                ProviderError::Connect {
                    provider: PROVIDER,
                    endpoint: api_base.unwrap_or("api.cloudflare.com").to_string(),
                    source: Box::new(e),
                }
            })?;
        let owner_comment = owner_comment(owner);
        Ok(Self {
            client,
            zone_id,
            owner_comment,
            ttl: 300,
            retry,
        })
    }

    async fn send<E>(
        &self,
        operation: &'static str,
        name: &str,
        endpoint: &E,
    ) -> Result<E::ResponseType, ProviderError>
    where
        E: EndpointSpec + Send + Sync,
        E::ResponseType: ResponseConverter<E::JsonResponse>,
    {
        let mut delay = self.retry.first_delay;
        let mut attempt = 1;
        loop {
            let (status, errors) = match self.client.request(endpoint).await {
                Ok(response) => return Ok(response),
                Err(ApiFailure::Error(status, errors)) => (status, errors),
                Err(ApiFailure::Invalid(source)) => {
                    return Err(ProviderError::Connect {
                        provider: PROVIDER,
                        endpoint: format!("{operation} of {name}"),
                        source: Box::new(source),
                    });
                }
            };
            let message = describe(&errors);
            let retryable = status.as_u16() == 429 || status.is_server_error();
            if !retryable {
                return Err(match status.as_u16() {
                    401 | 403 => ProviderError::Unauthorized {
                        provider: PROVIDER,
                        message,
                    },
                    _ => ProviderError::Rejected {
                        provider: PROVIDER,
                        operation,
                        name: name.to_string(),
                        message,
                    },
                });
            }
            if attempt >= self.retry.attempts {
                let attempts = attempt;
                return Err(match status.as_u16() {
                    429 => ProviderError::RateLimited {
                        provider: PROVIDER,
                        attempts,
                    },
                    _ => ProviderError::Unavailable {
                        provider: PROVIDER,
                        attempts,
                        message,
                    },
                });
            }
            tracing::warn!(
                provider = PROVIDER,
                operation,
                record = name,
                status = status.as_u16(),
                attempt,
                "dns provider request will be retried"
            );
            tokio::time::sleep(delay).await;
            delay *= 2;
            attempt += 1;
        }
    }

    fn body<'a>(&'a self, record: &'a DnsRecord, ownership: Ownership) -> RecordBody<'a> {
        let content = match record.record_type {
            RecordType::TXT => quoted_character_strings(&record.value),
            _ => record.value.clone(),
        };
        RecordBody {
            record_type: type_name(record.record_type),
            name: &record.name,
            content,
            ttl: self.ttl,
            proxied: false,
            comment: (ownership == Ownership::Owned).then_some(self.owner_comment.as_str()),
        }
    }

    fn id<'a>(&self, existing: &'a ExistingRecord) -> Result<&'a str, ProviderError> {
        existing
            .id
            .as_deref()
            .ok_or_else(|| ProviderError::Invalid {
                provider: PROVIDER,
                message: format!("record {} has no id", existing.record.name),
            })
    }
}

/// The comment marking owned records. Cloudflare limits comments to 100 characters on some
/// plans, so a long owner is replaced by its digest.
fn owner_comment(owner: &str) -> String {
    use sha2::{Digest, Sha256};
    let comment = format!("managed by mailwarden for {owner}");
    if comment.len() <= 100 {
        return comment;
    }
    format!(
        "managed by mailwarden for {}",
        &hex::encode(Sha256::digest(owner))[..32]
    )
}

fn type_name(record_type: RecordType) -> &'static str {
    match record_type {
        RecordType::A => "A",
        RecordType::AAAA => "AAAA",
        RecordType::TXT => "TXT",
    }
}

/// `code 81058: An identical record already exists.`, one per error, joined by `; `.
fn describe(errors: &ApiErrors) -> String {
    let described: Vec<String> = errors
        .errors
        .iter()
        .map(|e| format!("code {}: {}", e.code, e.message))
        .collect();
    if described.is_empty() {
        "no error details".to_string()
    } else {
        described.join("; ")
    }
}

impl DnsProvider for CloudflareProvider {
    fn kind(&self) -> &'static str {
        PROVIDER
    }

    async fn read(
        &self,
        names: &[String],
        _known_owned: &[DnsRecord],
    ) -> Result<Vec<ExistingRecord>, ProviderError> {
        let mut found = Vec::new();
        for name in names {
            let mut page = 1;
            loop {
                let query = ListQuery {
                    name,
                    page,
                    per_page: PAGE_SIZE,
                };
                let listing = ListRecords {
                    zone_id: &self.zone_id,
                    query,
                };
                let response = self.send("read", name, &listing).await?;
                for api in response.result.0 {
                    let record_type = match api.record_type.as_str() {
                        "TXT" => RecordType::TXT,
                        "A" => RecordType::A,
                        "AAAA" => RecordType::AAAA,
                        _ => continue,
                    };
                    let value = match record_type {
                        RecordType::TXT => normalize_txt_presentation(&api.content),
                        _ => api.content.clone(),
                    };
                    let record = DnsRecord {
                        name: api.name.to_lowercase(),
                        record_type,
                        value,
                    };
                    let owned = api.comment.as_deref() == Some(self.owner_comment.as_str());
                    found.push(ExistingRecord {
                        record,
                        owned,
                        id: Some(api.id),
                    });
                }
                let info: PageInfo = response
                    .result_info
                    .and_then(|info| serde_json::from_value(info).ok())
                    .unwrap_or_default();
                if info.page == 0 || info.page >= info.total_pages {
                    break;
                }
                page = info.page + 1;
            }
        }
        Ok(found)
    }

    async fn create(&self, record: &DnsRecord) -> Result<(), ProviderError> {
        let endpoint = CreateRecord {
            zone_id: &self.zone_id,
            body: self.body(record, Ownership::Owned),
        };
        self.send("create", &record.name, &endpoint).await.map(drop)
    }

    async fn update(
        &self,
        existing: &ExistingRecord,
        record: &DnsRecord,
        ownership: Ownership,
    ) -> Result<(), ProviderError> {
        let id = self.id(existing)?;
        let endpoint = ReplaceRecord {
            zone_id: &self.zone_id,
            id,
            body: self.body(record, ownership),
        };
        self.send("update", &record.name, &endpoint).await.map(drop)
    }

    async fn delete(&self, existing: &ExistingRecord) -> Result<(), ProviderError> {
        let id = self.id(existing)?;
        let endpoint = DeleteRecord {
            zone_id: &self.zone_id,
            id,
        };
        self.send("delete", &existing.record.name, &endpoint)
            .await
            .map(drop)
    }
}
