//! The API's description and its explorer.
//!
//! The OpenAPI 3.1 document is kept by hand in `openapi.json`, next to the handlers it
//! describes; the end-to-end suite checks every response it receives against it (route,
//! status and body), so it cannot drift from the code unnoticed. Swagger UI is compiled into
//! the binary (`vendored`): nothing is fetched at build time or when a browser opens it.

use utoipa_swagger_ui::{Config, SwaggerUi};

/// The document, as served at [`DOCUMENT_PATH`].
pub const DOCUMENT: &str = include_str!("openapi.json");
pub const DOCUMENT_PATH: &str = "/openapi.json";
pub const EXPLORER_PATH: &str = "/swagger-ui";

/// Swagger UI at [`EXPLORER_PATH`], serving the document at [`DOCUMENT_PATH`].
pub fn explorer() -> SwaggerUi {
    let document: serde_json::Value =
        serde_json::from_str(DOCUMENT).expect("openapi.json is valid JSON (checked by the tests)");
    SwaggerUi::new(EXPLORER_PATH)
        .external_url_unchecked(DOCUMENT_PATH, document)
        // The default asks validator.swagger.io about the document: a request to the internet
        // from every browser that opens the page.
        .config(Config::new([DOCUMENT_PATH]).validator_url("none"))
}
