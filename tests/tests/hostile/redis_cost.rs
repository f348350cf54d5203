//! Hostile: redis_cost.
