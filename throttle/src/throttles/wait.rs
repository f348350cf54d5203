//! `stat(..).cost(n)`: the stat as a hit of cost `n` sees it (see `strategy::wait`).

use super::core::Core;
use crate::backend::Key;
use crate::strategy::StrategyStat;
use crate::strategy::wait::{self, CostWait};
use crate::{Connection, Context, Cost, InvalidCost, ThrottleError};

impl Core {
    /// [`Core::stat`], its `wait_ms` for a hit of `cost` (of 1 without one).
    pub(crate) async fn stat_for(
        &self,
        conn: &Connection<'_>,
        cost: Option<Result<Cost, InvalidCost>>,
        call_context: Option<&Context>,
    ) -> Result<Option<StrategyStat>, ThrottleError> {
        let cost = cost.transpose()?.map_or(1, Cost::get);
        let Some(mut stat) = self.stat(conn, call_context).await? else {
            return Ok(None);
        };
        if cost <= 1 || stat.rate.is_unlimited() {
            if cost == 0 {
                stat.wait_ms = 0;
            }
            return Ok(Some(stat));
        }
        let strategy = self.strategy_now();
        let capacity = strategy.capacity(stat.rate);
        if cost > capacity {
            return Err(ThrottleError::CostExceedsCapacity { uid: self.uid.to_string(), cost, capacity });
        }
        stat.wait_ms = match wait::wait_for(&*strategy, &stat, cost) {
            CostWait::Known(wait_ms) => wait_ms,
            CostWait::StatAt(rate) => self.snapshot(Key::from(stat.key.as_str()), &*strategy, rate).await?.wait_ms,
        };
        Ok(Some(stat))
    }

    /// Whether a hit of `cost` fits now, from a stat made by this throttle.
    pub(crate) fn fits_now(&self, stat: &StrategyStat, cost: u64) -> bool {
        stat.rate.is_unlimited() || wait::fits_now(&*self.strategy_now(), stat, cost)
    }
}
