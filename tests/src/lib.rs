//! Workspace member that hosts the integration tests, and the server binary
//! (`src/bin/throttled_server.rs`) that the multi-process tests start.
