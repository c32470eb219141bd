//! Time, behind a trait so that the stack's logic runs deterministically under a manual clock.

use std::ops::{Add, Sub};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A point in time on CLOCK_MONOTONIC (for the system clock), so a C caller can compare an
/// event's deadline with `clock_gettime(CLOCK_MONOTONIC)` and Python with `time.monotonic()`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(Duration);

impl Timestamp {
    /// A timestamp this long after the clock's origin.
    pub const fn from_duration(since_origin: Duration) -> Timestamp {
        Timestamp(since_origin)
    }
    /// Time since the clock's origin.
    pub fn since_origin(self) -> Duration {
        self.0
    }
    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(d))
    }
}

/// The stack's source of time.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// Blocks the calling thread until `now() >= t`.
    fn sleep_until(&self, t: Timestamp);
    /// True for a clock whose time only moves when a test says so.
    fn is_manual(&self) -> bool {
        false
    }
}

/// CLOCK_MONOTONIC.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid out-pointer; CLOCK_MONOTONIC always exists on Linux.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Timestamp(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    fn sleep_until(&self, t: Timestamp) {
        let now = self.now();
        if t > now {
            std::thread::sleep(t.saturating_since(now));
        }
    }
}

/// A clock for tests: time stands still until `advance` or `set` moves it. Threads sleeping on
/// it wake when it passes their deadline, so tests never sleep for real.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    inner: Arc<(Mutex<Duration>, Condvar)>,
}

impl ManualClock {
    /// A clock at `start` after its origin (a non-zero start keeps `t - d` meaningful in tests).
    pub fn new(start: Duration) -> ManualClock {
        ManualClock {
            inner: Arc::new((Mutex::new(start), Condvar::new())),
        }
    }

    /// Moves time forward by `d` and wakes every sleeper whose deadline has passed.
    pub fn advance(&self, d: Duration) {
        let (lock, cv) = &*self.inner;
        *lock.lock().unwrap() += d;
        cv.notify_all();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(*self.inner.0.lock().unwrap())
    }

    fn sleep_until(&self, t: Timestamp) {
        let (lock, cv) = &*self.inner;
        let mut now = lock.lock().unwrap();
        while *now < t.0 {
            now = cv.wait(now).unwrap();
        }
    }

    fn is_manual(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_wakes_sleepers_only_when_advanced_past_their_deadline() {
        let clock = ManualClock::new(Duration::from_secs(1));
        let deadline = clock.now() + Duration::from_millis(500);
        let c = clock.clone();
        let sleeper = std::thread::spawn(move || {
            c.sleep_until(deadline);
            c.now()
        });
        clock.advance(Duration::from_millis(200));
        assert!(!sleeper.is_finished() || clock.now() >= deadline);
        clock.advance(Duration::from_millis(300));
        assert!(sleeper.join().unwrap() >= deadline);
    }

    #[test]
    fn system_clock_is_monotonic() {
        let a = SystemClock.now();
        let b = SystemClock.now();
        assert!(b >= a);
    }
}
