//! What the document says once for every operation, and what no single handler owns: the
//! `x-request-id` header and the `default` problem on every operation, the schemas' text,
//! the declared resources, the links from the operations that create things to those that use
//! them, and the CORS preflights (answered by the router's fallbacks, not by a route).

use serde_json::{Map, Value, json};

use super::responses::problem_response;
use super::schemas;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

pub fn finish(doc: &mut Value, resources: &[&str]) {
    let components = doc["components"]["schemas"]
        .as_object_mut()
        .expect("the document has component schemas");
    for (name, schema) in schemas::all(resources) {
        components.insert(name.to_string(), schema);
    }
    let paths = doc["paths"]
        .as_object_mut()
        .expect("the document has paths");
    for (path, item) in paths.iter_mut() {
        for method in METHODS {
            if let Some(op) = item.get_mut(method) {
                every_operation(op);
                declared_resources(path, op, resources);
            }
        }
    }
    links(paths);
    let preflights: Vec<(String, Value)> = paths
        .iter()
        .filter(|(path, _)| path.starts_with(crate::context::STOREFRONT_PREFIX))
        .map(|(path, item)| (path.clone(), preflight(item)))
        .collect();
    for (path, op) in preflights {
        paths[&path]["options"] = op;
    }
}

fn request_id_header() -> Value {
    json!({"description": "The request's id: the client's `x-request-id` when it is 1 to 128 visible ASCII characters, else a new one",
           "required": true, "schema": {"type": "string", "pattern": "^[!-~]{1,128}$"}})
}

/// `x-request-id` in and out, and the problem any route can answer (a 503
/// `database_unavailable`, a 500 `internal_error`, a 408 `request_timeout`, …).
fn every_operation(op: &mut Value) {
    let mut parameters = op["parameters"].as_array().cloned().unwrap_or_default();
    for parameter in &mut parameters {
        // An absent header or query parameter is `required: false`; its value is never null.
        if parameter["schema"]["type"] == json!(["string", "null"]) {
            parameter["schema"]["type"] = json!("string");
        }
    }
    parameters.push(json!({"name": "x-request-id", "in": "header", "required": false,
        "description": "Echoed in the answer's `x-request-id` when it is 1 to 128 visible ASCII characters",
        "schema": {"type": "string"}}));
    op["parameters"] = Value::Array(parameters);
    let responses = op["responses"].as_object_mut().expect("operations answer");
    responses.entry("default").or_insert_with(|| {
        json!({"description": "Any other error, e.g. 503 `database_unavailable` (with Retry-After) or 500 `internal_error`",
               "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})
    });
    for (status, response) in responses.iter_mut() {
        let headers = response
            .as_object_mut()
            .expect("a response is an object")
            .entry("headers")
            .or_insert_with(|| json!({}));
        // utoipa's header objects cannot say `required`; every documented header is sent on
        // every such answer but these.
        for (name, header) in headers.as_object_mut().into_iter().flatten() {
            let sometimes =
                name == "Idempotent-Replayed" || (name == "Retry-After" && status == "502");
            header["required"] = json!(!sometimes);
        }
        headers["x-request-id"] = request_id_header();
    }
}

/// The catalog's `{resource}` is one of the declared resources of this deployment.
fn declared_resources(path: &str, op: &mut Value, resources: &[&str]) {
    if !path.starts_with("/api/v1/{resource}") {
        return;
    }
    for parameter in op["parameters"].as_array_mut().into_iter().flatten() {
        if parameter["name"] == "resource" && parameter["in"] == "path" {
            parameter["schema"] = json!({"type": "string", "enum": resources});
        }
    }
}

/// A link's parameters: `(parameter, runtime expression)`.
type LinkParameters = &'static [(&'static str, &'static str)];

/// From an operation that creates or lists things to the operations that take them:
/// `(from, status, to, parameters)`.
const LINKS: &[(&str, &str, &str, LinkParameters)] = &[
    ("createStore", "201", "getAdminStore", STORE_SLUG),
    ("createStore", "201", "updateStore", STORE_SLUG),
    ("createStore", "201", "rotateStoreApiKey", STORE_SLUG),
    ("createStore", "201", "purgeStoreCache", STORE_SLUG),
    ("createStore", "201", "getStoreCacheStats", STORE_SLUG),
    ("createStore", "201", "listStoreWebhooks", STORE_SLUG),
    ("createStore", "201", "getStoreAnalytics", STORE_SLUG),
    ("createBookingDraft", "201", "getBookingDraft", DRAFT_ID),
    ("createBookingDraft", "201", "confirmBookingDraft", DRAFT_ID),
    ("createBookingDraft", "201", "cancelBookingDraft", DRAFT_ID),
    ("confirmBookingDraft", "200", "getBookingDraft", DRAFT_ID),
    (
        "listCatalogItems",
        "200",
        "getCatalogItem",
        &[
            ("resource", "$request.path.resource"),
            ("id", "$response.body#/data/0/id"),
        ],
    ),
];
const STORE_SLUG: LinkParameters = &[("slug", "$response.body#/data/slug")];
const DRAFT_ID: LinkParameters = &[("id", "$response.body#/data/id")];

fn links(paths: &mut Map<String, Value>) {
    for (from, status, to, parameters) in LINKS {
        let op = paths
            .values_mut()
            .flat_map(|item| {
                item.as_object_mut()
                    .into_iter()
                    .flat_map(|m| m.values_mut())
            })
            .find(|op| op["operationId"] == *from)
            .unwrap_or_else(|| panic!("a link from an unknown operation {from}"));
        let response = &mut op["responses"][*status];
        assert!(response.is_object(), "{from} answers no {status}");
        let parameters: Map<String, Value> = parameters
            .iter()
            .map(|(name, expression)| (name.to_string(), json!(expression)))
            .collect();
        response["links"][*to] = json!({"operationId": to, "parameters": parameters});
    }
}

/// `OPTIONS` on a storefront path (CONTRACT §14). Operation ids follow the path's own:
/// `getStore` → `preflightGetStore`.
fn preflight(item: &Value) -> Value {
    let first = METHODS
        .iter()
        .find_map(|m| item.get(*m))
        .expect("a path has an operation");
    let id = first["operationId"].as_str().unwrap_or_default();
    let mut parameters: Vec<Value> = first["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["in"] == "path")
        .cloned()
        .collect();
    parameters.extend([
        json!({"name": "Origin", "in": "header", "required": true, "schema": {"type": "string"},
               "description": "The page's origin; allowed when in the store's `allowed_origins` or the store's own site"}),
        json!({"name": "Access-Control-Request-Method", "in": "header", "required": true,
               "schema": {"type": "string"},
               "description": "What makes the request a preflight; without it `OPTIONS` is 405 `method_not_allowed`"}),
        json!({"name": "Access-Control-Request-Headers", "in": "header", "required": false,
               "schema": {"type": "string"}}),
    ]);
    let header = |description: &str, value: Value| json!({"description": description, "required": true, "schema": value});
    let mut first_char = id.chars();
    let upper: String = first_char
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(first_char)
        .collect();
    json!({
        "operationId": format!("preflight{upper}"),
        "tags": ["cors"],
        "summary": "CORS preflight",
        "description": "Allowed when the origin is allowed for the store the `Host` names or, if `Host` names no store (a shared API host), for some store. Never `*`, never credentials.",
        "parameters": parameters,
        "responses": {
            "204": {"description": "The origin may call this API", "headers": {
                "Access-Control-Allow-Origin": header("The request's origin", json!({"type": "string"})),
                "Access-Control-Allow-Methods": header("GET, POST, DELETE", json!({"type": "string"})),
                "Access-Control-Allow-Headers": header("content-type, idempotency-key, if-none-match, x-store-id, x-request-id", json!({"type": "string"})),
                "Access-Control-Max-Age": header("600", json!({"type": "string", "pattern": "^[0-9]+$"})),
                "Vary": header("Origin", json!({"type": "string"})),
                "x-request-id": request_id_header(),
            }},
            "403": with_request_id(problem_response(403, "The origin is not allowed (no CORS headers)", &["origin_not_allowed"])),
            "405": with_request_id(problem_response(405, "Not a preflight (no `Access-Control-Request-Method`)", &["method_not_allowed"])),
            "default": with_request_id(json!({"description": "Any other error",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}})),
        },
    })
}

fn with_request_id(mut response: Value) -> Value {
    response["headers"]["x-request-id"] = request_id_header();
    response
}
