//! Hostile: stack.
