//! What every provider config has in common: the settings the client core
//! reads ([`ProviderConfig`]), the builder methods over them
//! ([`shared_config_methods!`]), environment lookup and `Debug` redaction.
//!
//! Each provider keeps its own public config struct (the field names below
//! are part of the public API); the macro only writes the methods that are
//! the same for all of them.

use std::fmt;
use std::sync::Arc;

use crate::LlmError;
use crate::pricing::PriceTable;
use crate::transport::TransportConfig;

/// The settings of a provider config that the shared client core reads.
pub(crate) trait ProviderConfig: fmt::Debug + Send + Sync + 'static {
    /// Name used in errors and events.
    fn provider_name(&self) -> &str;
    /// Model used when a request does not name one.
    fn model(&self) -> &str;
    /// Further headers sent with every request.
    fn extra_headers(&self) -> &[(String, String)];
    /// Timeouts and retries.
    fn transport(&self) -> &TransportConfig;
    /// Prices used to fill `ChatResponse::cost`.
    fn prices(&self) -> &Arc<PriceTable>;
}

/// Writes, for a config struct with the fields `provider_name`, `model`,
/// `base_url`, `extra_headers`, `transport` and `prices`, its shared builder
/// methods and its [`ProviderConfig`] impl. `$base_url_doc` documents
/// `with_base_url`.
macro_rules! shared_config_methods {
    ($config:ty, $base_url_doc:literal) => {
        impl $config {
            #[doc = $base_url_doc]
            #[must_use]
            pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
                self.base_url = base_url.into();
                self
            }

            /// With another provider name.
            #[must_use]
            pub fn with_provider_name(mut self, name: impl Into<String>) -> Self {
                self.provider_name = name.into();
                self
            }

            /// With these timeouts and retries.
            #[must_use]
            pub fn with_transport(mut self, transport: $crate::transport::TransportConfig) -> Self {
                self.transport = transport;
                self
            }

            /// With this price table.
            #[must_use]
            pub fn with_prices(
                mut self,
                prices: ::std::sync::Arc<$crate::pricing::PriceTable>,
            ) -> Self {
                self.prices = prices;
                self
            }

            /// With one more header on every request.
            #[must_use]
            pub fn with_header(
                mut self,
                name: impl Into<String>,
                value: impl Into<String>,
            ) -> Self {
                self.extra_headers.push((name.into(), value.into()));
                self
            }
        }

        impl $crate::config::ProviderConfig for $config {
            fn provider_name(&self) -> &str {
                &self.provider_name
            }

            fn model(&self) -> &str {
                &self.model
            }

            fn extra_headers(&self) -> &[(String, String)] {
                &self.extra_headers
            }

            fn transport(&self) -> &$crate::transport::TransportConfig {
                &self.transport
            }

            fn prices(&self) -> &::std::sync::Arc<$crate::pricing::PriceTable> {
                &self.prices
            }
        }
    };
}

pub(crate) use shared_config_methods;

/// The value of variable `name`, trimmed, when it is set and not blank.
pub(crate) fn non_blank(lookup: &impl Fn(&str) -> Option<String>, name: &str) -> Option<String> {
    lookup(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// The API key held by variable `var`, else `MissingApiKey` for `provider`.
pub(crate) fn required_api_key(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &str,
    provider: &str,
) -> Result<String, LlmError> {
    non_blank(lookup, var).ok_or_else(|| LlmError::MissingApiKey {
        provider: provider.to_string(),
        env_var: var.to_string(),
    })
}

/// How an API key shows in `Debug`: empty, or `<redacted>`.
pub(crate) fn redacted(api_key: &str) -> &'static str {
    if api_key.is_empty() { "" } else { "<redacted>" }
}

/// The names of extra headers, for `Debug` (values may be secrets).
pub(crate) fn header_names(headers: &[(String, String)]) -> Vec<&String> {
    headers.iter().map(|(name, _)| name).collect()
}
