//! Hostile: glob.
