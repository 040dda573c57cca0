//! What a rule answers.

/// The rule's effect on the decision (deny-overrides; see docs/rules.md#combining).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
    /// No opinion: the request is outside the rule's concern.
    Abstain,
}

/// A rule's answer: an effect and, for a deny, a short machine-readable
/// reason such as `pii_table:hr.salaries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    effect: Effect,
    reason: Option<String>,
}

impl Verdict {
    pub fn allow() -> Self {
        Self { effect: Effect::Allow, reason: None }
    }

    /// A deny with its reason. Keep reasons short codes, lowercase with `_`;
    /// append the subject after a colon (`pii_column:ssn`).
    pub fn deny(reason: impl Into<String>) -> Self {
        Self { effect: Effect::Deny, reason: Some(reason.into()) }
    }

    pub fn abstain() -> Self {
        Self { effect: Effect::Abstain, reason: None }
    }

    /// Attach or replace the reason (an allow or abstain may explain itself
    /// too, for observe-mode reports).
    #[must_use]
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn effect(&self) -> Effect {
        self.effect
    }

    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    pub fn is_deny(&self) -> bool {
        self.effect == Effect::Deny
    }

    pub fn into_parts(self) -> (Effect, Option<String>) {
        (self.effect, self.reason)
    }
}
