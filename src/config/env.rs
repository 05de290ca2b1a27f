//! `LOGGATE_<SECTION>__<KEY>=value` overrides. The value is read as a TOML
//! value when it parses as one (numbers, booleans, arrays), else as a string.

use super::ConfigError;

const PREFIX: &str = "LOGGATE_";
const SECTIONS: &[&str] =
    &["server", "upstream", "policy", "invalidation", "cache", "limits", "admin", "auth", "log", "audit", "shadow"];

pub(super) fn apply_overrides(
    table: &mut toml::Table,
    vars: impl IntoIterator<Item = (String, String)>,
) -> Result<(), ConfigError> {
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix(PREFIX) else {
            continue;
        };
        let Some((section, key)) = rest.split_once("__") else {
            continue;
        };
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        if !SECTIONS.contains(&section.as_str()) || key.is_empty() {
            return Err(ConfigError::Env { var, message: "no such config section".into() });
        }
        let entry = table.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        let toml::Value::Table(section_table) = entry else {
            return Err(ConfigError::Env { var, message: "section is not a table".into() });
        };
        section_table.insert(key, parse_value(&value));
    }
    Ok(())
}

fn parse_value(raw: &str) -> toml::Value {
    let doc = format!("v = {raw}");
    match doc.parse::<toml::Table>() {
        Ok(mut t) => t.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}
