//! The parent grammar of `braintrust.parent` attributes and the
//! `x-bt-parent` header: `project_id:<id>`, `project_name:<name>`,
//! `experiment_id:<id>`, or a serialized span-components string of the
//! SDKs (`components`).

mod components;

use super::{OtelParent, ProjectRef};

#[cfg(test)]
mod tests;

/// Parses a parent string (header or attribute value). `Err` is a
/// human-readable message; the caller picks the error's field.
///
/// The prefixed forms take the rest of the string verbatim as the id or
/// name, which must not be empty. Anything else must be span components
/// of version 3 or 4 (see `components`).
pub fn parse_parent(s: &str) -> Result<OtelParent, String> {
    let prefixed = [("project_id:", ProjectRef::Id as fn(String) -> ProjectRef), ("project_name:", ProjectRef::Name)];
    for (prefix, project) in prefixed {
        if let Some(rest) = s.strip_prefix(prefix) {
            return non_empty(prefix, rest).map(|v| OtelParent::ProjectLog(project(v)));
        }
    }
    if let Some(rest) = s.strip_prefix("experiment_id:") {
        return non_empty("experiment_id:", rest).map(OtelParent::Experiment);
    }
    components::parse(s).map_err(|why| {
        format!(
            "parent must be 'project_id:<id>', 'project_name:<name>', 'experiment_id:<id>' or serialized \
             span components (version 3 or 4): {why}"
        )
    })
}

fn non_empty(prefix: &str, rest: &str) -> Result<String, String> {
    if rest.is_empty() {
        return Err(format!("parent '{prefix}' names nothing: the {} is empty", &prefix[..prefix.len() - 1]));
    }
    Ok(rest.to_owned())
}
