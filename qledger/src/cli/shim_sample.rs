//! TEMPORARY stand-in for `ledger::sample` until it lands.
use ledger::event::{examples, Event};

#[derive(Debug, Clone, Default)]
pub struct SampleConfig {
    pub persons: usize,
    pub seed: u64,
}

pub fn population(_c: &SampleConfig) -> Vec<Event> {
    examples::all()
}

pub fn scenario_p17() -> Vec<Event> {
    Vec::new()
}
