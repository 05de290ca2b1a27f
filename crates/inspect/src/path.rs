//! Where in a body an error is: a chain of keys and indexes on the stack,
//! rendered (`rows[3].project_id`) only when an error is reported.

use std::fmt::Write;

use super::InspectError;
use super::json::JsonError;

#[derive(Clone, Copy)]
pub(crate) enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl<'p> Path<'p> {
    pub fn key(&'p self, key: &'p str) -> Path<'p> {
        Path::Key(self, key)
    }

    pub fn index(&'p self, i: usize) -> Path<'p> {
        Path::Index(self, i)
    }

    /// `None` for the whole body.
    pub fn render(&self) -> Option<String> {
        match self {
            Path::Root => None,
            _ => {
                let mut s = String::new();
                self.write(&mut s);
                Some(s)
            }
        }
    }

    fn write(&self, s: &mut String) {
        match *self {
            Path::Root => {}
            Path::Key(parent, key) => {
                parent.write(s);
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Path::Index(parent, i) => {
                parent.write(s);
                let _ = write!(s, "[{i}]");
            }
        }
    }

    /// A shape/semantic refusal at this place.
    pub fn bad(&self, message: impl Into<String>) -> InspectError {
        InspectError::BadRequest { field: self.render(), message: message.into() }
    }

    /// A syntax error met while reading the value at this place.
    pub fn syntax(&self, e: JsonError) -> InspectError {
        self.bad(syntax_message(e))
    }
}

pub(crate) fn syntax_message(e: JsonError) -> String {
    format!("invalid JSON at byte {}: {}", e.pos, e.kind)
}

/// Attaches a path to a scanner result: `sc.string().at(&path)?`.
pub(crate) trait At<T> {
    fn at(self, path: &Path<'_>) -> Result<T, InspectError>;
}

impl<T> At<T> for Result<T, JsonError> {
    #[inline]
    fn at(self, path: &Path<'_>) -> Result<T, InspectError> {
        self.map_err(|e| path.syntax(e))
    }
}
