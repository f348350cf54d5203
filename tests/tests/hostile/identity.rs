//! Hostile: identity.
