//! The OpenAPI 3.1 document of the HTTP API, generated from the code: each
//! handler's `#[utoipa::path]` (parameters, bodies, every status it answers)
//! and the `ToSchema` of the types it reads and writes, served at
//! `GET /openapi.json` without credentials.
//!
//! What every route shares is added here once, as the middleware does it:
//! the security schemes (an API token or a client certificate; the probes
//! and this document are open), 401 and 403 from authentication, 503 from
//! the request deadline, 413 and 415 from the JSON body extractor. The Confluent-compatible `/schema-registry/*`
//! routes follow Confluent's own API and are not described.
//!
//! ```sh
//! curl -s http://127.0.0.1:8080/openapi.json | head
//! ```

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use ledger::event::{Envelope, EventType};
use projectors::Eligibility;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response as ApiResponse, ResponseBuilder};
use utoipa::openapi::schema::{
    AllOfBuilder, ArrayBuilder, ObjectBuilder, OneOfBuilder, Schema, Type,
};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::access::OPEN_PATHS;
use super::problem::{Problem, PROBLEM_JSON};
use crate::service::Ledger;

pub(super) fn routes() -> Router<Arc<Ledger>> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// The document, built once.
fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut doc = ApiDoc::openapi();
        for part in [
            super::routes::Api::openapi(),
            super::batch::Api::openapi(),
            super::cards::Api::openapi(),
            super::claims::Api::openapi(),
            super::usage::Api::openapi(),
            super::onlinecheck::Api::openapi(),
        ] {
            doc.merge(part);
        }
        Shared.modify(&mut doc);
        doc
    })
}

/// The document as served (and as `qledger openapi` prints it).
pub fn document_json() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut doc = serde_json::to_value(document()).expect("the document serialises");
        name_link_fields(&mut doc);
        serde_json::to_string_pretty(&doc).expect("the document serialises")
    })
}

/// utoipa 5.5 writes a Link Object's fields in snake case (`operation_id`);
/// OpenAPI names them in camel case (`operationId`), as clients read them.
fn name_link_fields(doc: &mut serde_json::Value) {
    let responses = doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(|item| item.as_object_mut())
        .flat_map(|item| item.values_mut())
        .filter_map(|op| op.get_mut("responses").and_then(|r| r.as_object_mut()))
        .flat_map(|responses| responses.values_mut());
    for response in responses {
        let links = response.get_mut("links").and_then(|l| l.as_object_mut());
        for link in links.into_iter().flat_map(|l| l.values_mut()) {
            let Some(link) = link.as_object_mut() else {
                continue;
            };
            for (snake, camel) in [
                ("operation_id", "operationId"),
                ("operation_ref", "operationRef"),
                ("request_body", "requestBody"),
            ] {
                if let Some(v) = link.remove(snake) {
                    link.insert(camel.to_owned(), v);
                }
            }
        }
    }
}

/// `GET /openapi.json`
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "This document", body = OpenApiDocument)))]
async fn openapi_json() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        document_json(),
    )
        .into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "qledger",
        description = "The HTTP API of qledger, an event-sourced bitemporal ledger of health-insurance qualifications (オンライン資格確認). Errors are RFC 9457 `application/problem+json`.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(openapi_json),
    tags(
        (name = "probes", description = "Liveness and readiness, without credentials"),
        (name = "intake", description = "Events into the log"),
        (name = "eligibility", description = "Who is covered, on a date, as known at an instant"),
        (name = "audit", description = "A person's version rows, dead letters"),
        (name = "card-links", description = "My Number card links and their completion notices"),
        (name = "claims", description = "Claims, their decisions, overlap notices"),
        (name = "usage", description = "Verification records and metering"),
        (name = "operations", description = "Metrics, identity, this document"),
    ),
)]
struct ApiDoc;

/// What the middleware and the extractors add to every route: security,
/// 401, 403, 503, and 413 and 415 where a JSON body is read.
#[derive(Debug)]
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("qlt_…")
                    .description(Some("An API token (`qledger tokens issue`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "client_certificate",
            SecurityScheme::MutualTls {
                description: Some(
                    "A TLS client certificate the token file maps to a principal".into(),
                ),
                extensions: None,
            },
        );
        doc.security = Some(vec![
            SecurityRequirement::new("token", Vec::<String>::new()),
            SecurityRequirement::new("client_certificate", Vec::<String>::new()),
        ]);
        for (path, item) in doc.paths.paths.iter_mut() {
            let open = OPEN_PATHS.contains(&path.as_str());
            for operation in operations(item) {
                if open {
                    operation.security = Some(Vec::new());
                } else {
                    add(operation, 401, unauthenticated);
                    add(
                        operation,
                        403,
                        problem("The caller's role does not allow the route"),
                    );
                }
                add(operation, 503, timed_out);
                let json_body = operation
                    .request_body
                    .as_ref()
                    .is_some_and(|b| b.content.contains_key("application/json"));
                if json_body {
                    add(
                        operation,
                        413,
                        problem("The body is larger than the server accepts"),
                    );
                    add(
                        operation,
                        415,
                        problem("The body is not `Content-Type: application/json`"),
                    );
                }
            }
        }
    }
}

fn operations(item: &mut utoipa::openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// Adds the response unless the route documents that status itself.
fn add(operation: &mut Operation, status: u16, response: impl FnOnce() -> ApiResponse) {
    operation
        .responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| RefOr::T(response()));
}

fn problem_builder(description: &str) -> ResponseBuilder {
    ResponseBuilder::new().description(description).content(
        PROBLEM_JSON,
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name(Problem::name())))
            .build(),
    )
}

fn problem(description: &'static str) -> impl FnOnce() -> ApiResponse {
    move || problem_builder(description).build()
}

fn unauthenticated() -> ApiResponse {
    problem_builder("No credentials, or credentials no token or certificate matches")
        .header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(String::schema())
                .description(Some("`Bearer realm=\"qledger\"`"))
                .build(),
        )
        .build()
}

fn timed_out() -> ApiResponse {
    problem_builder(
        "The request was not answered in the time the server allows, or the event log is unavailable: retry later",
    )
    .header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(u64::schema())
            .description(Some("Seconds to wait"))
            .build(),
    )
    .build()
}

/// The JSON answer of an eligibility lookup that found the key:
/// [`Lookup::Found`](projectors::Lookup::Found), `{"status": "found", …}`.
#[derive(Debug)]
pub(super) struct FoundEligibility;

impl PartialSchema for FoundEligibility {
    fn schema() -> RefOr<Schema> {
        AllOfBuilder::new()
            .item(Ref::from_schema_name(Eligibility::name()))
            .item(
                ObjectBuilder::new()
                    .property("status", constant("found"))
                    .required("status"),
            )
            .into()
    }
}

impl ToSchema for FoundEligibility {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Eligibility::name().into(), Eligibility::schema()));
        Eligibility::schemas(schemas);
    }
}

/// A string schema with one value.
fn constant(value: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some([value]))
}

/// A FHIR R4 resource ([`crate::fhir`]): a `CoverageEligibilityResponse`,
/// or an `OperationOutcome` for a miss.
#[derive(Debug)]
pub(super) struct FhirResource;

impl PartialSchema for FhirResource {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .description(Some(
                "A FHIR R4 resource: `CoverageEligibilityResponse` (200) or `OperationOutcome` (404)",
            ))
            .property(
                "resourceType",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["CoverageEligibilityResponse", "OperationOutcome"])),
            )
            .required("resourceType")
            .into()
    }
}

impl ToSchema for FhirResource {}

/// The body of `POST /v1/events`: one event or an array of them, in the
/// JSON form of [`ledger::event::json`] — `type`, `envelope`, and the
/// fields of the type's Avro record (`schemas/*.avsc`).
#[derive(Debug)]
pub(super) struct EventBody;

impl PartialSchema for EventBody {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(Ref::from_schema_name("Event"))
            .item(ArrayBuilder::new().items(Ref::from_schema_name("Event")))
            .into()
    }
}

impl ToSchema for EventBody {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        let types: Vec<&str> = EventType::ALL.iter().map(|t| t.name()).collect();
        let event = ObjectBuilder::new()
            .description(Some(
                "An event: its `type`, its `envelope` and the fields of the type's Avro record (schemas/*.avsc)",
            ))
            .property(
                "type",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(types)),
            )
            .required("type")
            .property("envelope", Ref::from_schema_name(Envelope::name()))
            .required("envelope");
        schemas.push(("Event".into(), event.into()));
        schemas.push((Envelope::name().into(), Envelope::schema()));
        Envelope::schemas(schemas);
    }
}

/// An OpenAPI 3.1 document.
#[derive(Debug)]
struct OpenApiDocument;

impl PartialSchema for OpenApiDocument {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property(
                "openapi",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^3\.1\.[0-9]+$")),
            )
            .required("openapi")
            .property("info", ObjectBuilder::new())
            .required("info")
            .property("paths", ObjectBuilder::new())
            .required("paths")
            .into()
    }
}

impl ToSchema for OpenApiDocument {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("OpenApiDocument")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::Method;
    use serde_json::Value;

    use super::*;
    use crate::http::access::action_of;

    /// (METHOD, path) of every documented operation.
    fn documented() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(document()).unwrap();
        let mut out = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                out.insert((method.to_ascii_uppercase(), path.clone()));
            }
        }
        out
    }

    /// (METHOD, path) of each `.route("…", get(…).post(…))` in the body of
    /// a module's `fn routes()`.
    fn routed_in(source: &str) -> BTreeSet<(String, String)> {
        let start = source.find("fn routes()").expect("a fn routes()");
        let body = &source[start..];
        let body = &body[..body.find("\n}\n").expect("its end")];
        let mut out = BTreeSet::new();
        for (at, _) in body.match_indices(".route(") {
            let rest = body[at + ".route(".len()..].trim_start();
            let rest = rest.strip_prefix('"').expect("a literal path");
            let (path, rest) = rest.split_once('"').unwrap();
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map(|(i, _)| i)
                .unwrap();
            let methods = &rest[..end];
            for method in ["get", "post", "put", "delete", "patch"] {
                let called = methods.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0 || !methods[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_')
                });
                if called {
                    out.insert((method.to_ascii_uppercase(), path.to_owned()));
                }
            }
        }
        assert!(!out.is_empty(), "no routes found in {}", &body[..40]);
        out
    }

    #[test]
    fn the_document_describes_exactly_the_routes_served() {
        let mut routed = BTreeSet::new();
        for source in [
            include_str!("routes.rs"),
            include_str!("cards.rs"),
            include_str!("claims.rs"),
            include_str!("usage.rs"),
            include_str!("onlinecheck.rs"),
            include_str!("openapi.rs"),
        ] {
            routed.extend(routed_in(source));
        }
        // Every router merged into the API is read above (or is the
        // schema registry's, which follows Confluent's API).
        let merged: Vec<&str> = include_str!("mod.rs")
            .match_indices(".merge(")
            .map(|(i, _)| &include_str!("mod.rs")[i + 7..])
            .filter_map(|rest| rest.split_once("::routes()").map(|(m, _)| m))
            .collect();
        assert_eq!(
            merged,
            [
                "cards",
                "claims",
                "usage",
                "onlinecheck",
                "registry",
                "openapi"
            ],
            "a router was merged: read its routes here"
        );
        let documented = documented();
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(missing.is_empty(), "served but not documented: {missing:?}");
        assert!(extra.is_empty(), "documented but not served: {extra:?}");
    }

    #[test]
    fn operation_ids_are_unique_and_links_name_one() {
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap();
                assert!(ids.insert(id.to_owned()), "operationId {id} twice");
            }
        }
        let mut links = 0;
        for item in doc["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for response in op["responses"].as_object().unwrap().values() {
                    for link in response["links"]
                        .as_object()
                        .into_iter()
                        .flat_map(|l| l.values())
                    {
                        links += 1;
                        let target = link["operationId"].as_str().unwrap();
                        assert!(ids.contains(target), "a link to {target}");
                    }
                }
            }
        }
        assert!(links >= 4);
    }

    #[test]
    fn every_documented_route_is_open_or_has_an_access_rule() {
        for (method, path) in documented() {
            let method = Method::from_bytes(method.as_bytes()).unwrap();
            assert!(
                OPEN_PATHS.contains(&path.as_str()) || action_of(&method, &path).is_some(),
                "{method} {path} has no access rule"
            );
        }
        for path in OPEN_PATHS {
            assert!(documented().iter().any(|(_, p)| p == path), "{path}");
        }
    }

    /// Every `$ref` in `value`.
    fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
        match value {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc: Value = serde_json::from_str(document_json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3.1."));
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let mut found = Vec::new();
        refs(&doc, &mut found);
        assert!(found.len() > 50);
        for r in found {
            let name = r
                .strip_prefix("#/components/schemas/")
                .unwrap_or_else(|| panic!("{r} is not a schema reference"));
            assert!(schemas.contains_key(name), "{r} does not resolve");
        }
    }

    #[test]
    fn every_error_is_a_problem_and_every_secured_route_answers_401() {
        let doc = serde_json::to_value(document()).unwrap();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for (status, response) in responses {
                    let content = response["content"].as_object();
                    // The online check answers its own errors in its own
                    // message format; authentication's are problems still.
                    let own_format = path == "/v1/onlinecheck";
                    if status.starts_with('4') {
                        assert!(
                            content.is_some_and(|c| c.contains_key(PROBLEM_JSON)
                                || (own_format && c.contains_key("application/xml"))),
                            "{method} {path} {status} is not a problem"
                        );
                    }
                }
                let open = OPEN_PATHS.contains(&path.as_str());
                assert_eq!(responses.contains_key("401"), !open, "{method} {path}");
                assert!(responses.contains_key("503"), "{method} {path}");
            }
        }
    }
}
