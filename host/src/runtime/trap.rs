//! Why a guest call trapped: the runtime classifies a trap once, and the
//! server and the metrics read the class from here.

/// Why a guest call trapped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrapReason {
    /// `unreachable` executed, which is how a guest panic ends.
    Panic,
    /// The call ran past its CPU time limit (epoch interruption).
    CpuTime,
    /// Memory could not grow or an access was out of bounds.
    Memory,
    StackOverflow,
    Other,
}

impl TrapReason {
    /// Every variant, in the order they are rendered.
    pub const ALL: [TrapReason; 5] = [
        TrapReason::Panic,
        TrapReason::CpuTime,
        TrapReason::Memory,
        TrapReason::StackOverflow,
        TrapReason::Other,
    ];

    /// The value of the `reason` label.
    pub fn label(&self) -> &'static str {
        match self {
            TrapReason::Panic => "panic",
            TrapReason::CpuTime => "cpu_time",
            TrapReason::Memory => "memory",
            TrapReason::StackOverflow => "stack_overflow",
            TrapReason::Other => "other",
        }
    }

    /// The variant's position in [`TrapReason::ALL`], for per-reason arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, reason) in TrapReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason:?}");
        }
    }

    #[test]
    fn labels_are_distinct() {
        let mut labels: Vec<&str> = TrapReason::ALL.iter().map(TrapReason::label).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), TrapReason::ALL.len());
    }
}
