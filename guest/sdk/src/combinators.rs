//! Awaiting several futures at once inside one handler, e.g. two host
//! operations in flight together. Each poll polls every unfinished child,
//! which suits the executor: a completion re-polls the whole task.

use std::future::{poll_fn, Future};
use std::pin::{pin, Pin};
use std::task::Poll;

/// Which of two raced futures finished first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either<A, B> {
    /// The first future finished first.
    Left(A),
    /// The second future finished first.
    Right(B),
}

/// Awaits both, concurrently.
pub async fn join<A: Future, B: Future>(a: A, b: B) -> (A::Output, B::Output) {
    let mut a = pin!(a);
    let mut b = pin!(b);
    let mut left = None;
    let mut right = None;
    poll_fn(|cx| {
        if left.is_none() {
            if let Poll::Ready(value) = a.as_mut().poll(cx) {
                left = Some(value);
            }
        }
        if right.is_none() {
            if let Poll::Ready(value) = b.as_mut().poll(cx) {
                right = Some(value);
            }
        }
        match (left.take(), right.take()) {
            (Some(l), Some(r)) => Poll::Ready((l, r)),
            (l, r) => {
                left = l;
                right = r;
                Poll::Pending
            }
        }
    })
    .await
}

/// Awaits all, concurrently; outputs keep the input order. A finished
/// future is dropped at once rather than when the last one ends.
pub async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pending: Vec<Option<Pin<Box<F>>>> =
        futures.into_iter().map(|f| Some(Box::pin(f))).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut all_done = true;
        for (slot, output) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => {
                        *output = Some(value);
                        *slot = None;
                    }
                    Poll::Pending => all_done = false,
                }
            }
        }
        if all_done {
            Poll::Ready(outputs.drain(..).flatten().collect())
        } else {
            Poll::Pending
        }
    })
    .await
}

/// Awaits whichever finishes first and drops the other (a dropped host op
/// is forgotten at the host). `a` is polled first, so it wins a tie.
pub async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(value) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(value));
        }
        if let Poll::Ready(value) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(value));
        }
        Poll::Pending
    })
    .await
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::{Context, Waker};

    use super::*;

    /// Ready after being polled `n` more times; counts its own polls.
    struct Countdown {
        left: u32,
        polls: Rc<Cell<u32>>,
        value: &'static str,
    }

    impl Future for Countdown {
        type Output = &'static str;

        fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<&'static str> {
            self.polls.set(self.polls.get() + 1);
            if self.left == 0 {
                return Poll::Ready(self.value);
            }
            self.left -= 1;
            Poll::Pending
        }
    }

    fn countdown(left: u32, value: &'static str) -> (Countdown, Rc<Cell<u32>>) {
        let polls = Rc::new(Cell::new(0));
        let future = Countdown {
            left,
            polls: Rc::clone(&polls),
            value,
        };
        (future, polls)
    }

    /// Polls until ready, returning the output and the number of polls.
    fn run<F: Future>(future: F) -> (F::Output, u32) {
        let mut future = pin!(future);
        let mut cx = Context::from_waker(Waker::noop());
        for polls in 1..100 {
            if let Poll::Ready(value) = future.as_mut().poll(&mut cx) {
                return (value, polls);
            }
        }
        panic!("future never finished");
    }

    #[test]
    fn join_waits_for_both_and_polls_each_until_done() {
        let (a, a_polls) = countdown(1, "a");
        let (b, b_polls) = countdown(3, "b");
        assert_eq!(run(join(a, b)), (("a", "b"), 4));
        assert_eq!((a_polls.get(), b_polls.get()), (2, 4));
    }

    #[test]
    fn join_all_keeps_order() {
        let futures = vec![
            countdown(2, "x").0,
            countdown(0, "y").0,
            countdown(1, "z").0,
        ];
        assert_eq!(run(join_all(futures)), (vec!["x", "y", "z"], 3));
        assert_eq!(run(join_all(Vec::<Countdown>::new())), (vec![], 1));
    }

    #[test]
    fn race_takes_the_first_and_left_wins_ties() {
        let (slow, _) = countdown(5, "slow");
        let (fast, _) = countdown(1, "fast");
        assert_eq!(run(race(slow, fast)), (Either::Right("fast"), 2));
        let (a, _) = countdown(0, "a");
        let (b, b_polls) = countdown(0, "b");
        assert_eq!(run(race(a, b)), (Either::Left("a"), 1));
        assert_eq!(b_polls.get(), 0);
    }
}
