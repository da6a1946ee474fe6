//! Validation errors: which field, and which rule it broke.
//!
//! Domain constructors know the rule but not the field they were read from, so
//! they return a [`RuleViolation`]; the caller that knows the field turns it into
//! a [`FieldError`] with [`RuleViolation::at`].

use std::borrow::Cow;
use std::fmt;

/// A rule a value broke, without the field it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleViolation(Cow<'static, str>);

impl RuleViolation {
    pub fn new(rule: impl Into<Cow<'static, str>>) -> RuleViolation {
        RuleViolation(rule.into())
    }

    pub fn rule(&self) -> &str {
        &self.0
    }

    /// Attach the field (a dotted path such as `envelope.link`).
    pub fn at(self, field: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            rule: self.0.into_owned(),
        }
    }
}

impl fmt::Display for RuleViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RuleViolation {}

/// A value refused: the field (dotted path) and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, utoipa::ToSchema)]
#[error("{field}: {rule}")]
pub struct FieldError {
    pub field: String,
    pub rule: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, rule: impl Into<String>) -> FieldError {
        FieldError {
            field: field.into(),
            rule: rule.into(),
        }
    }
}
