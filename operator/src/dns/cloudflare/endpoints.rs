//! Cloudflare v4 DNS record endpoints built on the `cloudflare` crate's framework: the crate's
//! own DNS types lack `comment`, which marks the records the operator owns.

use cloudflare::framework::endpoint::spec::EndpointSpec;
use cloudflare::framework::endpoint::{Method, RequestBody, serialize_query};
use cloudflare::framework::response::{ApiResult, ApiSuccess};
use serde::{Deserialize, Serialize};

/// A DNS record as the API returns it.
#[derive(Clone, Debug, Deserialize)]
pub struct ApiRecord {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub content: String,
    #[serde(default)]
    pub comment: Option<String>,
}

/// A page of records (a local type so that the framework's result trait applies).
#[derive(Debug, Deserialize)]
#[serde(transparent)]
pub struct ApiRecords(pub Vec<ApiRecord>);

/// The `result` of a delete (the id, which the caller already knows).
#[derive(Debug, Deserialize)]
pub struct Deleted {}

impl ApiResult for ApiRecord {}
impl ApiResult for ApiRecords {}
impl ApiResult for Deleted {}

/// The `result_info` of a listing.
#[derive(Debug, Default, Deserialize)]
pub struct PageInfo {
    #[serde(default)]
    pub page: u32,
    #[serde(default)]
    pub total_pages: u32,
}

#[derive(Debug, Serialize)]
pub struct ListQuery<'a> {
    pub name: &'a str,
    pub page: u32,
    pub per_page: u32,
}

/// `GET zones/{zone_id}/dns_records?name=...&page=...&per_page=...`
pub struct ListRecords<'a> {
    pub zone_id: &'a str,
    pub query: ListQuery<'a>,
}

impl EndpointSpec for ListRecords<'_> {
    type JsonResponse = ApiRecords;
    type ResponseType = ApiSuccess<ApiRecords>;

    fn method(&self) -> Method {
        Method::GET
    }

    fn path(&self) -> String {
        format!("zones/{}/dns_records", self.zone_id)
    }

    fn query(&self) -> Option<String> {
        serialize_query(&self.query)
    }
}

/// The body of a create or a full update. `proxied` is always false: mail records must
/// resolve to the real addresses.
#[derive(Debug, Serialize)]
pub struct RecordBody<'a> {
    #[serde(rename = "type")]
    pub record_type: &'a str,
    pub name: &'a str,
    pub content: String,
    pub ttl: u32,
    pub proxied: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<&'a str>,
}

/// `POST zones/{zone_id}/dns_records`
pub struct CreateRecord<'a> {
    pub zone_id: &'a str,
    pub body: RecordBody<'a>,
}

impl EndpointSpec for CreateRecord<'_> {
    type JsonResponse = ApiRecord;
    type ResponseType = ApiSuccess<ApiRecord>;

    fn method(&self) -> Method {
        Method::POST
    }

    fn path(&self) -> String {
        format!("zones/{}/dns_records", self.zone_id)
    }

    fn body(&self) -> Option<RequestBody<'_>> {
        serde_json::to_string(&self.body)
            .ok()
            .map(RequestBody::Json)
    }
}

/// `PUT zones/{zone_id}/dns_records/{id}`: replaces the whole record.
pub struct ReplaceRecord<'a> {
    pub zone_id: &'a str,
    pub id: &'a str,
    pub body: RecordBody<'a>,
}

impl EndpointSpec for ReplaceRecord<'_> {
    type JsonResponse = ApiRecord;
    type ResponseType = ApiSuccess<ApiRecord>;

    fn method(&self) -> Method {
        Method::PUT
    }

    fn path(&self) -> String {
        format!("zones/{}/dns_records/{}", self.zone_id, self.id)
    }

    fn body(&self) -> Option<RequestBody<'_>> {
        serde_json::to_string(&self.body)
            .ok()
            .map(RequestBody::Json)
    }
}

/// `DELETE zones/{zone_id}/dns_records/{id}`
pub struct DeleteRecord<'a> {
    pub zone_id: &'a str,
    pub id: &'a str,
}

impl EndpointSpec for DeleteRecord<'_> {
    type JsonResponse = Deleted;
    type ResponseType = ApiSuccess<Deleted>;

    fn method(&self) -> Method {
        Method::DELETE
    }

    fn path(&self) -> String {
        format!("zones/{}/dns_records/{}", self.zone_id, self.id)
    }
}
