//! Hostile: keys.
