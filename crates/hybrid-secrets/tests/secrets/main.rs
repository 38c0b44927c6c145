//! hybrid-secrets' integration tests, one binary: each test file is a module here
//! (`cargo test -p hybrid-secrets --test secrets redaction::`); a new file becomes a new
//! module, not a new binary to link.

mod redaction;
