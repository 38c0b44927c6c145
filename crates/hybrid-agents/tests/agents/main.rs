//! hybrid-agents' integration tests, one binary: each test file is a module here
//! (`cargo test -p hybrid-agents --test agents turn_loop::`); a new file becomes a new
//! module, not a new binary to link.

mod turn_loop;
