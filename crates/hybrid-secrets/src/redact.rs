//! [`Redact`]: values that can have their secrets removed in place, field by field, so a
//! boundary can redact a typed record (a task, an event, a result) without a trip through
//! JSON.
//!
//! Implemented here for strings, JSON values and the containers around them; the crates
//! that own record types implement it for those (hybrid-core for tasks, events and
//! results), with a test that fills every string of a record with a secret and checks that
//! none survives.

use serde_json::Value;

use crate::Redactor;

/// A value whose secrets [`Redactor`] can remove in place.
pub trait Redact {
    /// Redacts every secret in place; whether anything changed.
    fn redact(&mut self, redactor: &Redactor) -> bool;

    /// This value, redacted.
    fn redacted(mut self, redactor: &Redactor) -> Self
    where
        Self: Sized,
    {
        self.redact(redactor);
        self
    }
}

impl Redact for String {
    fn redact(&mut self, redactor: &Redactor) -> bool {
        redactor.redact_in_place(self)
    }
}

impl Redact for Value {
    fn redact(&mut self, redactor: &Redactor) -> bool {
        redactor.redact_json_in_place(self)
    }
}

impl Redact for serde_json::Map<String, Value> {
    fn redact(&mut self, redactor: &Redactor) -> bool {
        let mut value = Value::Object(std::mem::take(self));
        let changed = redactor.redact_json_in_place(&mut value);
        if let Value::Object(map) = value {
            *self = map;
        }
        changed
    }
}

impl<T: Redact> Redact for Option<T> {
    fn redact(&mut self, redactor: &Redactor) -> bool {
        self.as_mut().is_some_and(|v| v.redact(redactor))
    }
}

impl<T: Redact> Redact for Box<T> {
    fn redact(&mut self, redactor: &Redactor) -> bool {
        (**self).redact(redactor)
    }
}

impl<T: Redact> Redact for Vec<T> {
    fn redact(&mut self, redactor: &Redactor) -> bool {
        self.iter_mut()
            .fold(false, |changed, v| v.redact(redactor) | changed)
    }
}

/// Redacts each of several fields; whether any changed. `redact_all!(r; a, b.c, d)`.
#[macro_export]
macro_rules! redact_all {
    ($redactor:expr; $($field:expr),+ $(,)?) => {{
        let redactor = $redactor;
        let mut changed = false;
        $( changed |= $crate::Redact::redact(&mut $field, redactor); )+
        changed
    }};
}
