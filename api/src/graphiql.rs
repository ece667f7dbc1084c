//! GraphiQL, served whole from the binary: `GET /graphql` answers the page
//! and `GET /graphql/assets/<file>` the scripts and the stylesheet it loads,
//! so it works on a host with no internet and under a content policy that
//! forbids other origins.
//!
//! The assets are the built files of pinned npm packages, vendored
//! unchanged under `api/assets/graphiql/` with their licenses (that
//! directory's README says which versions and how to update them):
//! GraphiQL's UMD bundle (`graphiql@3.8.3`, MIT; it bundles graphql-js and
//! CodeMirror) and the React UMD builds it needs (`react@18.3.1`,
//! `react-dom@18.3.1`, MIT).
//!
//! The header editor starts empty and open: the page's first request is
//! the schema's introspection, which needs no token and must not carry a
//! made-up one (a bogus token is 401). A user pastes
//! `{"Authorization": "Bearer <token>"}` there; GraphiQL sends those
//! headers with every request and as the subscription socket's
//! `connection_init` payload, which [`crate::sockets`] reads. Headers are
//! not persisted in the browser's storage.

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Where the assets are served, below `/graphql` so one proxy rule covers
/// GraphiQL whole.
pub const ASSETS_PREFIX: &str = "/graphql/assets";

/// One embedded file: its name under [`ASSETS_PREFIX`], content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Every file `GET /graphql/assets/<file>` serves; the page loads the
/// first four, the licenses are there for whoever asks.
const ASSETS: &[Asset] = &[
    Asset {
        name: "react.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/react.production.min.js"),
    },
    Asset {
        name: "react-dom.production.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/react-dom.production.min.js"),
    },
    Asset {
        name: "graphiql.min.js",
        content_type: JS,
        bytes: include_bytes!("../assets/graphiql/graphiql.min.js"),
    },
    Asset {
        name: "graphiql.min.css",
        content_type: CSS,
        bytes: include_bytes!("../assets/graphiql/graphiql.min.css"),
    },
    Asset {
        name: "LICENSE-graphiql",
        content_type: TEXT,
        bytes: include_bytes!("../assets/graphiql/LICENSE-graphiql"),
    },
    Asset {
        name: "LICENSE-react",
        content_type: TEXT,
        bytes: include_bytes!("../assets/graphiql/LICENSE-react"),
    },
];

/// `GET /graphql`: the GraphiQL page.
pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

/// `GET /graphql/assets/{file}`: one embedded asset, or 404. The files
/// change only with the binary, so browsers may keep them for a day.
pub async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|asset| asset.name == file) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            asset.bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// The page: the embedded assets by path, the fetcher over `/graphql` and
/// `/graphql/ws` on the page's own origin, an empty header editor shown
/// open, and a first query that says where the token goes.
const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>srs GraphiQL</title>
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="/graphql/assets/graphiql.min.css">
</head>
<body>
  <div id="graphiql">Loading GraphiQL...</div>
  <script src="/graphql/assets/react.production.min.js"></script>
  <script src="/graphql/assets/react-dom.production.min.js"></script>
  <script src="/graphql/assets/graphiql.min.js"></script>
  <script>
    const url = new URL('/graphql', window.location.href).toString();
    const subscriptionUrl = url.replace(/^http/, 'ws') + '/ws';
    const fetcher = GraphiQL.createFetcher({ url, subscriptionUrl });
    const defaultQuery = [
      '# srs GraphQL: the schema needs no token, the data does.',
      '# Paste yours into Headers below:',
      '#   {"Authorization": "Bearer <token>"}',
      '# (the first ADMIN token is in <data>/admin.token)',
      '',
      '{ me { name role } sites { id name } }',
      '',
    ].join('\n');
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultQuery,
        defaultHeaders: '',
        defaultEditorToolsVisibility: 'headers',
        shouldPersistHeaders: false,
      })
    );
  </script>
</body>
</html>
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_local_reference_of_the_page_is_an_embedded_asset() {
        let referenced: Vec<&str> = PAGE
            .split(['"', '\''])
            .filter(|piece| piece.starts_with(ASSETS_PREFIX))
            .collect();
        assert_eq!(referenced.len(), 4, "{referenced:?}");
        for path in referenced {
            let name = &path[ASSETS_PREFIX.len() + 1..];
            assert!(
                ASSETS
                    .iter()
                    .any(|asset| asset.name == name && !asset.bytes.is_empty()),
                "{path} is not embedded"
            );
        }
        assert!(
            !PAGE.contains("http://") && !PAGE.contains("https://") && !PAGE.contains("//unpkg")
        );
    }
}
