//! Workspace member that only hosts tests and examples.
