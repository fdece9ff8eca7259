//! Test plugin: reads through the `cluster` import and reports what it got
//! in its status, so tests can see the host's read path and read grants.
//! It asks to read ConfigMaps, not Secrets.

use operon_sdk::{Context, Error, Gvk, Reconciler, Registration, Request, Response};
use serde_json::json;

struct Reads;

impl Reconciler for Reads {
    fn describe() -> Registration {
        Registration::new(
            "reads",
            env!("CARGO_PKG_VERSION"),
            Gvk::new("test.operon.dev", "v1", "Widget"),
        )
        .reads(Gvk::new("", "v1", "ConfigMap"))
    }

    fn reconcile(ctx: &Context, req: Request) -> Result<Response, Error> {
        let ns = req.namespace();
        let names: Vec<String> = ctx
            .list_json("v1", "ConfigMap", ns, Some("app=demo"))?
            .iter()
            .filter_map(|cm| cm["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        let one = ctx.get_json("v1", "ConfigMap", ns, "settings")?;
        let secret = match ctx.get_json("v1", "Secret", ns, "creds") {
            Ok(found) => format!("read: {}", found.is_some()),
            Err(e) => e.message().to_string(),
        };
        let spec = req.spec().unwrap_or(serde_json::Value::Null);
        let other = spec["otherNamespace"].as_str().unwrap_or("prod");
        let other_namespace = match ctx.get_json("v1", "ConfigMap", Some(other), "elsewhere") {
            Ok(found) => format!("read: {}", found.is_some()),
            Err(e) => e.message().to_string(),
        };
        Ok(Response::new().status(json!({
            "configMaps": names,
            "settingsFound": one.is_some(),
            "secret": secret,
            "otherNamespace": other_namespace,
        })))
    }
}

operon_sdk::export!(Reads);
