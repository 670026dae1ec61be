//! Bounded history of a chart's samples: a ring buffer, so a console left
//! open for a week holds the same memory as one opened a minute ago.

use crate::ports::Timestamp;
use std::collections::VecDeque;

#[derive(Clone, Debug)]
pub struct History {
    capacity: usize,
    samples: VecDeque<(Timestamp, f64)>,
}

impl History {
    pub fn new(capacity: usize) -> Self {
        History {
            capacity: capacity.max(1),
            samples: VecDeque::with_capacity(capacity.clamp(1, 8192)),
        }
    }

    /// Append a sample; samples out of order (older than the newest) are
    /// dropped so the series stays sorted.
    pub fn push(&mut self, at: Timestamp, value: f64) {
        if !value.is_finite() || self.samples.back().is_some_and(|(t, _)| *t >= at) {
            return;
        }
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back((at, value));
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Samples at or after `since`, as (seconds relative to `now`, value):
    /// negative x, `now` at 0, what the chart plots.
    pub fn window(&self, since: Timestamp, now: Timestamp) -> Vec<(f64, f64)> {
        let start = self.samples.partition_point(|(t, _)| *t < since);
        self.samples
            .range(start..)
            .map(|(t, v)| ((t.0 - now.0) as f64 / 1000.0, *v))
            .collect()
    }

    pub fn max_since(&self, since: Timestamp) -> Option<f64> {
        let start = self.samples.partition_point(|(t, _)| *t < since);
        self.samples
            .range(start..)
            .map(|(_, v)| *v)
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_within_capacity() {
        let mut h = History::new(3);
        for i in 0..5 {
            h.push(Timestamp(i * 1000), i as f64);
        }
        assert_eq!(h.len(), 3);
        assert_eq!(
            h.window(Timestamp(0), Timestamp(4000)),
            vec![(-2.0, 2.0), (-1.0, 3.0), (0.0, 4.0)]
        );
        h.push(Timestamp(1000), 9.0);
        h.push(Timestamp(5000), f64::NAN);
        assert_eq!(h.len(), 3, "old and NaN samples are dropped");
        assert_eq!(h.max_since(Timestamp(3000)), Some(4.0));
    }
}
