//! The Confluent Schema Registry REST API over qledger's own contract
//! ([`ledger::event::registry`]), served under [`PREFIX`], so a Confluent
//! client configured with `url = http://HOST:PORT/schema-registry` can frame
//! events in the Confluent wire format (`00`, 4-byte schema id, datum) that
//! qledger decodes (`ledger::event::avro::decode_confluent`).
//!
//! Read-only: the contract is owned by `schemas/` in the repository.
//! Registering a schema that is already in the contract answers its id;
//! anything else is a 409. Subjects are `jp.qledger.events.<Type>`
//! (`RecordNameStrategy`) or `<topic>-jp.qledger.events.<Type>`
//! (`TopicRecordNameStrategy`); ids are `type number × 1000 + version`.
//!
//! | route (under `/schema-registry`) | answer |
//! | --- | --- |
//! | `GET /` | `{}` |
//! | `GET /subjects[?subjectPrefix=]` | record-name subjects |
//! | `GET /subjects/{subject}/versions` | `[1, 2, …]` |
//! | `GET /subjects/{subject}/versions/{version}` | `{"subject", "id", "version", "schema"}`; `version` is a number, `latest` or `-1` |
//! | `GET /subjects/{subject}/versions/{version}/schema` | the schema itself |
//! | `POST /subjects/{subject}` | lookup by Parsing Canonical Form: `{"subject", "id", "version", "schema"}` |
//! | `POST /subjects/{subject}/versions` | register: `{"id"}` if in the contract, else 409 |
//! | `GET /schemas/ids/{id}` | `{"schema"}` |
//! | `GET /schemas/ids/{id}/schema` | the schema itself |
//! | `GET /schemas/ids/{id}/subjects` | `[subject]` |
//! | `GET /schemas/ids/{id}/versions` | `[{"subject", "version"}]` |
//! | `GET /schemas/types` | `["AVRO"]` |
//! | `POST /compatibility/subjects/{subject}/versions/{version}[?verbose=true]` | `{"is_compatible": bool}` (+ `messages`), against that version, both directions |
//! | `POST /compatibility/subjects/{subject}/versions[?verbose=true]` | the same against every version |
//! | `GET /config`, `GET /config/{subject}` | `{"compatibilityLevel": "FULL_TRANSITIVE"}` |
//!
//! Bodies are `application/vnd.schemaregistry.v1+json`; requests may also
//! be `application/vnd.schemaregistry+json`, `application/json` or
//! `application/octet-stream`. Errors are Confluent's
//! `{"error_code": 40401, "message": "…"}`: 40401 subject, 40402 version,
//! 40403 schema not found, 42201 invalid schema, 42202 invalid version, 409
//! not in the contract; the HTTP status is the code's first three digits.
//! Query parameters the registry has no use for (`normalize`, `deleted`,
//! `format`, …) are ignored.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use ledger::event::registry::{self, Registered, RegistryError, VersionSpec};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Value};

/// Where the registry is served: its base URL for clients is
/// `http://HOST:PORT/schema-registry`.
pub const PREFIX: &str = "/schema-registry";

/// The media type of every registry answer.
pub const REGISTRY_JSON: &str = "application/vnd.schemaregistry.v1+json";

/// Media types a request body may have (or none).
const ACCEPTED_BODIES: &[&str] = &[
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// The registry's routes under [`PREFIX`], with their own fallbacks so that
/// unknown paths and methods under the prefix answer in Confluent's format.
/// Needs no state: merge it into any router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let api = Router::new()
        .route("/", get(root))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route("/subjects/{subject}/versions/{version}", get(version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_schema),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_by_id))
        .route("/schemas/types", get(types))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_all),
        )
        .route("/config", get(config))
        .route("/config/{subject}", get(subject_config))
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed);
    Router::new().nest(PREFIX, api)
}

/// An error in Confluent's format.
#[derive(Debug)]
pub struct RegistryApiError {
    status: StatusCode,
    error_code: u32,
    message: String,
}

impl RegistryApiError {
    fn new(status: StatusCode, error_code: u32, message: impl Into<String>) -> Self {
        RegistryApiError {
            status,
            error_code,
            message: message.into(),
        }
    }
}

impl From<RegistryError> for RegistryApiError {
    fn from(e: RegistryError) -> Self {
        let code = e.error_code();
        let status = match code {
            40401..=40499 => StatusCode::NOT_FOUND,
            42201..=42299 => StatusCode::UNPROCESSABLE_ENTITY,
            409 => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        RegistryApiError::new(status, code, e.to_string())
    }
}

impl IntoResponse for RegistryApiError {
    fn into_response(self) -> Response {
        reply(
            self.status,
            &json!({"error_code": self.error_code, "message": self.message}),
        )
    }
}

impl From<PathRejection> for RegistryApiError {
    fn from(r: PathRejection) -> Self {
        RegistryApiError::new(StatusCode::BAD_REQUEST, 400, r.body_text())
    }
}

impl From<QueryRejection> for RegistryApiError {
    fn from(r: QueryRejection) -> Self {
        RegistryApiError::new(StatusCode::BAD_REQUEST, 400, r.body_text())
    }
}

impl From<BytesRejection> for RegistryApiError {
    fn from(r: BytesRejection) -> Self {
        let status = r.status();
        RegistryApiError::new(status, u32::from(status.as_u16()), r.body_text())
    }
}

type Answer = Result<Response, RegistryApiError>;

/// A JSON answer with the registry's media type.
fn reply(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(REGISTRY_JSON),
        )],
        bytes,
    )
        .into_response()
}

fn ok(body: Value) -> Answer {
    Ok(reply(StatusCode::OK, &body))
}

/// A schema text as the answer itself (the `/schema` endpoints).
fn raw_schema(text: &'static str) -> Answer {
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(REGISTRY_JSON),
        )],
        text,
    )
        .into_response())
}

/// `axum::extract::Path` with Confluent-format rejections.
#[derive(Debug)]
struct P<T>(T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for P<T> {
    type Rejection = RegistryApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, RegistryApiError> {
        let axum::extract::Path(v) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(P(v))
    }
}

/// The query parameters, of which a route reads the few it knows.
#[derive(Debug)]
struct Q(Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for Q {
    type Rejection = RegistryApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, RegistryApiError> {
        let axum::extract::Query(v) =
            axum::extract::Query::<Vec<(String, String)>>::from_request_parts(parts, state).await?;
        Ok(Q(v))
    }
}

impl Q {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// `true` in any case (Python clients send `True`).
    fn flag(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

/// The body of the requests that carry a schema. Other members (`metadata`,
/// `ruleSet`, …) are ignored.
#[derive(Debug, Deserialize)]
struct SchemaRequest {
    schema: Option<String>,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    references: Option<Vec<Value>>,
}

/// A schema-carrying body: its schema text, checked for what the registry
/// serves.
#[derive(Debug)]
struct SchemaBody(String);

impl<S: Send + Sync> FromRequest<S> for SchemaBody {
    type Rejection = RegistryApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, RegistryApiError> {
        check_media_type(req.headers())?;
        let bytes = Bytes::from_request(req, state).await?;
        let body: SchemaRequest = serde_json::from_slice(&bytes).map_err(|e| {
            RegistryApiError::new(
                StatusCode::BAD_REQUEST,
                400,
                format!("the body is not a schema request: {e}"),
            )
        })?;
        if let Some(t) = body.schema_type.as_deref() {
            if !t.eq_ignore_ascii_case(registry::SCHEMA_TYPE) {
                return Err(RegistryError::InvalidSchema(format!(
                    "schema type {t} is not served: only {}",
                    registry::SCHEMA_TYPE
                ))
                .into());
            }
        }
        if body.references.as_ref().is_some_and(|r| !r.is_empty()) {
            return Err(RegistryError::InvalidSchema(
                "schema references are not supported: qledger's schemas are self-contained".into(),
            )
            .into());
        }
        match body.schema {
            Some(s) if !s.trim().is_empty() => Ok(SchemaBody(s)),
            _ => Err(RegistryError::InvalidSchema("the request has no schema".into()).into()),
        }
    }
}

fn check_media_type(headers: &HeaderMap) -> Result<(), RegistryApiError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ACCEPTED_BODIES.contains(&essence.as_str()) {
        Ok(())
    } else {
        Err(RegistryApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
            format!(
                "unsupported media type '{essence}': send {}",
                ACCEPTED_BODIES.join(", ")
            ),
        ))
    }
}

fn id_of(raw: &str) -> Result<Registered, RegistryApiError> {
    raw.parse::<u32>()
        .ok()
        .and_then(registry::by_id)
        .ok_or_else(|| {
            RegistryError::SchemaNotFound(format!(
                "no schema has id {raw} (ids are type number × 1000 + version)"
            ))
            .into()
        })
}

fn version_body(subject: &str, r: &Registered) -> Value {
    json!({"subject": subject, "version": r.version, "id": r.id, "schema": r.text()})
}

async fn root() -> Answer {
    ok(json!({}))
}

/// `GET /subjects[?subjectPrefix=]`
async fn subjects(query: Q) -> Answer {
    let prefix = query.get("subjectPrefix").filter(|p| *p != ":*:");
    let subjects: Vec<String> = registry::subjects()
        .into_iter()
        .filter(|s| prefix.is_none_or(|p| s.starts_with(p)))
        .collect();
    ok(json!(subjects))
}

/// `GET /subjects/{subject}/versions`
async fn versions(P(subject): P<String>) -> Answer {
    ok(json!(registry::versions(&subject)?))
}

/// `GET /subjects/{subject}/versions/{version}`
async fn version(P((subject, version)): P<(String, String)>) -> Answer {
    let r = registry::version(&subject, version.parse()?)?;
    ok(version_body(&subject, &r))
}

/// `GET /subjects/{subject}/versions/{version}/schema`
async fn version_schema(P((subject, version)): P<(String, String)>) -> Answer {
    raw_schema(registry::version(&subject, version.parse()?)?.text())
}

/// `POST /subjects/{subject}`: is this schema under the subject?
async fn lookup(P(subject): P<String>, SchemaBody(schema): SchemaBody) -> Answer {
    let r = registry::lookup(&subject, &schema)?;
    ok(version_body(&subject, &r))
}

/// `POST /subjects/{subject}/versions`: the id of a schema of the contract.
async fn register(P(subject): P<String>, SchemaBody(schema): SchemaBody) -> Answer {
    let r = registry::register(&subject, &schema)?;
    ok(json!({"id": r.id}))
}

/// `GET /schemas/ids/{id}`
async fn schema_by_id(P(id): P<String>) -> Answer {
    ok(json!({"schema": id_of(&id)?.text()}))
}

/// `GET /schemas/ids/{id}/schema`
async fn raw_schema_by_id(P(id): P<String>) -> Answer {
    raw_schema(id_of(&id)?.text())
}

/// `GET /schemas/ids/{id}/subjects`
async fn subjects_by_id(P(id): P<String>) -> Answer {
    let r = id_of(&id)?;
    ok(json!([registry::record_subject(r.event_type)]))
}

/// `GET /schemas/ids/{id}/versions`
async fn versions_by_id(P(id): P<String>) -> Answer {
    let r = id_of(&id)?;
    ok(json!([{"subject": registry::record_subject(r.event_type), "version": r.version}]))
}

/// `GET /schemas/types`
async fn types() -> Answer {
    ok(json!([registry::SCHEMA_TYPE]))
}

fn compatibility_body(c: registry::Compatibility, verbose: bool) -> Answer {
    if verbose {
        ok(json!({"is_compatible": c.is_compatible, "messages": c.messages}))
    } else {
        ok(json!({"is_compatible": c.is_compatible}))
    }
}

/// `POST /compatibility/subjects/{subject}/versions/{version}`
async fn compatibility(
    P((subject, version)): P<(String, String)>,
    query: Q,
    SchemaBody(schema): SchemaBody,
) -> Answer {
    let version: VersionSpec = version.parse()?;
    let c = registry::check_compatibility(&subject, version, &schema)?;
    compatibility_body(c, query.flag("verbose"))
}

/// `POST /compatibility/subjects/{subject}/versions`
async fn compatibility_all(
    P(subject): P<String>,
    query: Q,
    SchemaBody(schema): SchemaBody,
) -> Answer {
    let c = registry::check_compatibility_all(&subject, &schema)?;
    compatibility_body(c, query.flag("verbose"))
}

/// `GET /config`
async fn config() -> Answer {
    ok(json!({"compatibilityLevel": registry::COMPATIBILITY_LEVEL}))
}

/// `GET /config/{subject}`: every subject has the contract's level.
async fn subject_config(P(subject): P<String>) -> Answer {
    registry::resolve_subject(&subject)?;
    ok(json!({"compatibilityLevel": registry::COMPATIBILITY_LEVEL}))
}

async fn no_route(uri: Uri) -> RegistryApiError {
    RegistryApiError::new(
        StatusCode::NOT_FOUND,
        404,
        format!("HTTP 404 Not Found: no registry route for {}", uri.path()),
    )
}

async fn method_not_allowed() -> RegistryApiError {
    RegistryApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        405,
        "HTTP 405 Method Not Allowed: the registry is read-only; the contract is owned by \
         schemas/ in the qledger repository",
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Method, Request};
    use http_body_util::BodyExt;
    use ledger::event::avro::Contract;
    use ledger::event::EventType;
    use tower::ServiceExt;

    use super::*;

    const ACQUIRED: &str = "jp.qledger.events.QualificationAcquired";

    struct Reply {
        status: StatusCode,
        content_type: String,
        text: String,
        body: Value,
    }

    async fn send(request: Request<Body>) -> Reply {
        let response = routes::<()>().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            content_type,
            text,
            body,
        }
    }

    async fn get(path: &str) -> Reply {
        send(
            Request::get(format!("{PREFIX}{path}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    async fn post_as(path: &str, content_type: &str, body: &Value) -> Reply {
        send(
            Request::post(format!("{PREFIX}{path}"))
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(serde_json::to_vec(body).unwrap()))
                .unwrap(),
        )
        .await
    }

    async fn post(path: &str, body: &Value) -> Reply {
        post_as(path, REGISTRY_JSON, body).await
    }

    fn assert_error(reply: &Reply, status: StatusCode, code: u32) {
        assert_eq!(reply.status, status, "{}", reply.text);
        assert_eq!(reply.content_type, REGISTRY_JSON);
        assert_eq!(reply.body["error_code"], code, "{}", reply.text);
        assert!(reply.body["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }

    fn text(t: EventType) -> &'static str {
        Contract::get().current(t).text
    }

    fn id(t: EventType) -> u32 {
        registry::schema_id(t, Contract::get().history(t).len() as u32)
    }

    #[tokio::test]
    async fn subjects_versions_and_schemas() {
        let reply = get("/subjects").await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.content_type, REGISTRY_JSON);
        let subjects = reply.body.as_array().unwrap();
        assert_eq!(subjects.len(), EventType::ALL.len());
        assert!(subjects.contains(&json!(ACQUIRED)));

        let filtered = get("/subjects?subjectPrefix=jp.qledger.events.Card").await;
        assert_eq!(
            filtered.body.as_array().unwrap().len(),
            4,
            "{}",
            filtered.text
        );
        let all = get("/subjects?subjectPrefix=:*:&deleted=False").await;
        assert_eq!(all.body.as_array().unwrap().len(), EventType::ALL.len());

        let versions = get(&format!("/subjects/{ACQUIRED}/versions")).await;
        assert_eq!(versions.status, StatusCode::OK, "{}", versions.text);
        assert_eq!(versions.body[0], 1);

        let t = EventType::QualificationAcquired;
        for v in ["latest", "-1", "1"] {
            let reply = get(&format!("/subjects/{ACQUIRED}/versions/{v}")).await;
            assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
            assert_eq!(reply.body["subject"], ACQUIRED);
            assert_eq!(reply.body["version"], 1);
            assert_eq!(reply.body["id"], 1001);
            assert_eq!(reply.body["schema"], text(t));
            assert!(reply.body.get("schemaType").is_none(), "AVRO is implied");
        }
        // Under a topic (TopicRecordNameStrategy), the subject is echoed.
        let topical = format!("qledger.events-{ACQUIRED}");
        let reply = get(&format!("/subjects/{topical}/versions/latest")).await;
        assert_eq!(reply.body["subject"], json!(topical));
        assert_eq!(reply.body["id"], 1001);

        let raw = get(&format!("/subjects/{ACQUIRED}/versions/1/schema")).await;
        assert_eq!(raw.status, StatusCode::OK);
        assert_eq!(raw.text, text(t));

        let by_id = get("/schemas/ids/1001").await;
        assert_eq!(by_id.status, StatusCode::OK, "{}", by_id.text);
        assert_eq!(by_id.body, json!({"schema": text(t)}));
        let raw = get("/schemas/ids/1001/schema?subject=x&format=y").await;
        assert_eq!(raw.text, text(t));
        assert_eq!(
            get("/schemas/ids/1001/subjects").await.body,
            json!([ACQUIRED])
        );
        assert_eq!(
            get("/schemas/ids/1001/versions").await.body,
            json!([{"subject": ACQUIRED, "version": 1}])
        );
        assert_eq!(get("/schemas/types").await.body, json!(["AVRO"]));
        assert_eq!(
            get("/config").await.body,
            json!({"compatibilityLevel": "FULL_TRANSITIVE"})
        );
        assert_eq!(
            get(&format!("/config/{ACQUIRED}")).await.body,
            json!({"compatibilityLevel": "FULL_TRANSITIVE"})
        );
        assert_eq!(get("").await.body, json!({}));
    }

    #[tokio::test]
    async fn not_found_errors_carry_confluent_codes() {
        assert_error(
            &get("/subjects/orders-value/versions").await,
            StatusCode::NOT_FOUND,
            40401,
        );
        assert_error(
            &get("/subjects/QualificationAcquired/versions/1").await,
            StatusCode::NOT_FOUND,
            40401,
        );
        assert_error(
            &get(&format!("/subjects/{ACQUIRED}/versions/99")).await,
            StatusCode::NOT_FOUND,
            40402,
        );
        assert_error(
            &get(&format!("/subjects/{ACQUIRED}/versions/99/schema")).await,
            StatusCode::NOT_FOUND,
            40402,
        );
        for bad in ["0", "-2", "first", "1.5"] {
            assert_error(
                &get(&format!("/subjects/{ACQUIRED}/versions/{bad}")).await,
                StatusCode::UNPROCESSABLE_ENTITY,
                42202,
            );
        }
        for id in ["1", "1002", "99001", "x", "-1"] {
            let reply = get(&format!("/schemas/ids/{id}")).await;
            assert_error(&reply, StatusCode::NOT_FOUND, 40403);
            assert!(reply.body["message"].as_str().unwrap().contains(id));
        }
        assert_error(&get("/config/nope").await, StatusCode::NOT_FOUND, 40401);
        assert_error(&get("/nothing/here").await, StatusCode::NOT_FOUND, 404);
        let delete = send(
            Request::builder()
                .method(Method::DELETE)
                .uri(format!("{PREFIX}/subjects/{ACQUIRED}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_error(&delete, StatusCode::METHOD_NOT_ALLOWED, 405);
    }

    #[tokio::test]
    async fn lookup_by_content() {
        let t = EventType::QualificationAcquired;
        let found = post(
            &format!("/subjects/{ACQUIRED}?normalize=False&deleted=False"),
            &json!({"schema": text(t), "schemaType": "AVRO", "references": []}),
        )
        .await;
        assert_eq!(found.status, StatusCode::OK, "{}", found.text);
        assert_eq!(found.body["id"], id(t));
        assert_eq!(found.body["version"], 1);
        assert_eq!(found.body["subject"], ACQUIRED);

        // The canonical form, sent as plain JSON, matches too.
        let canonical = Contract::get().current(t).schema.canonical_form();
        let found = post_as(
            &format!("/subjects/{ACQUIRED}"),
            "application/json",
            &json!({"schema": canonical}),
        )
        .await;
        assert_eq!(found.body["id"], id(t), "{}", found.text);

        let other = post(
            &format!("/subjects/{ACQUIRED}"),
            &json!({"schema": text(EventType::CardLinked)}),
        )
        .await;
        assert_error(&other, StatusCode::NOT_FOUND, 40403);
        let unknown = post("/subjects/nope", &json!({"schema": text(t)})).await;
        assert_error(&unknown, StatusCode::NOT_FOUND, 40401);
    }

    #[tokio::test]
    async fn malformed_requests() {
        let path = format!("/subjects/{ACQUIRED}");
        assert_error(
            &post(&path, &json!({"schema": "{\"type\": \"record\""})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        );
        assert_error(
            &post(&path, &json!({})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        );
        assert_error(
            &post(&path, &json!({"schema": "{}", "schemaType": "PROTOBUF"})).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        );
        let t = EventType::QualificationAcquired;
        assert_error(
            &post(
                &path,
                &json!({"schema": text(t), "references": [{"name": "x", "subject": "y", "version": 1}]}),
            )
            .await,
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        );
        assert_error(
            &post_as(&path, "text/plain", &json!({"schema": text(t)})).await,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            415,
        );
        let garbage = send(
            Request::post(format!("{PREFIX}{path}"))
                .header(header::CONTENT_TYPE, REGISTRY_JSON)
                .body(Body::from("{\"schema\": "))
                .unwrap(),
        )
        .await;
        assert_error(&garbage, StatusCode::BAD_REQUEST, 400);
        // No content type at all is read as JSON.
        let bare = send(
            Request::post(format!("{PREFIX}{path}"))
                .body(Body::from(
                    serde_json::to_vec(&json!({"schema": text(t)})).unwrap(),
                ))
                .unwrap(),
        )
        .await;
        assert_eq!(bare.status, StatusCode::OK, "{}", bare.text);
    }

    #[tokio::test]
    async fn registration_answers_ids_and_refuses_changes() {
        let t = EventType::SubsidyGranted;
        let subject = registry::record_subject(t);
        let known = post(
            &format!("/subjects/{subject}/versions?normalize=False"),
            &json!({"schema": text(t)}),
        )
        .await;
        assert_eq!(known.status, StatusCode::OK, "{}", known.text);
        assert_eq!(known.body, json!({"id": id(t)}));

        let mut changed: Value = serde_json::from_str(text(t)).unwrap();
        changed["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "extra", "type": ["null", "string"], "default": null}));
        let refused = post(
            &format!("/subjects/{subject}/versions"),
            &json!({"schema": changed.to_string()}),
        )
        .await;
        assert_error(&refused, StatusCode::CONFLICT, 409);
        assert!(refused.body["message"]
            .as_str()
            .unwrap()
            .contains("schemas/history/SubsidyGranted/"));

        let topic_value = post(
            "/subjects/qledger.events-value/versions",
            &json!({"schema": text(t)}),
        )
        .await;
        assert_error(&topic_value, StatusCode::NOT_FOUND, 40401);
    }

    #[tokio::test]
    async fn compatibility_checks() {
        let t = EventType::CardUnlinked;
        let subject = registry::record_subject(t);
        let same = post(
            &format!(
                "/compatibility/subjects/{subject}/versions/latest?normalize=False&verbose=False"
            ),
            &json!({"schema": text(t)}),
        )
        .await;
        assert_eq!(same.status, StatusCode::OK, "{}", same.text);
        assert_eq!(same.body, json!({"is_compatible": true}));

        let mut required: Value = serde_json::from_str(text(t)).unwrap();
        required["fields"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "required_now", "type": "string"}));
        let body = json!({"schema": required.to_string()});
        let quiet = post(
            &format!("/compatibility/subjects/{subject}/versions/1"),
            &body,
        )
        .await;
        assert_eq!(
            quiet.body,
            json!({"is_compatible": false}),
            "{}",
            quiet.text
        );
        let verbose = post(
            &format!("/compatibility/subjects/{subject}/versions/1?verbose=True"),
            &body,
        )
        .await;
        assert_eq!(verbose.body["is_compatible"], false);
        assert!(
            verbose.body["messages"][0]
                .as_str()
                .unwrap()
                .contains("required_now"),
            "{}",
            verbose.text
        );
        let all = post(
            &format!("/compatibility/subjects/{subject}/versions"),
            &body,
        )
        .await;
        assert_eq!(all.body, json!({"is_compatible": false}), "{}", all.text);

        assert_error(
            &post(
                &format!("/compatibility/subjects/{subject}/versions/7"),
                &body,
            )
            .await,
            StatusCode::NOT_FOUND,
            40402,
        );
        assert_error(
            &post("/compatibility/subjects/nope/versions/1", &body).await,
            StatusCode::NOT_FOUND,
            40401,
        );
    }
}
